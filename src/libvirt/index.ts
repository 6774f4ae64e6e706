export * from "./domain.js";
export * from "./metadata.js";
export * from "./pool.js";
export * from "./xml.js";
export * from "./network.js";
