// The kvmctl API: schemas (which are the types), the kind registry and validation.
export * from "./common.js";
export * from "./crossobject.js";
export * from "./hash.js";
export * from "./kinds.js";
export * from "./names.js";
export * from "./net.js";
export * from "./network.js";
export * from "./quantity.js";
export * from "./storagepool.js";
export * from "./validate.js";
export * from "./virtualmachine.js";
