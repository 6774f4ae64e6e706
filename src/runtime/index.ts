export * from "./backoff.js";
export * from "./clock.js";
export * from "./conditions.js";
export * from "./controller.js";
export * from "./result.js";
export * from "./workqueue.js";
export * from "./metrics.js";
export * from "./wake-limiter.js";
