/**
 * @module @dray/control-plane
 * The control plane as a library (tests and the demo start it in-process);
 * the `dray-control-plane` bin runs main.ts.
 */
export { type ControlPlaneConfig, loadConfig } from "./config.js";
export { type ControlPlane, startControlPlane } from "./control-plane.js";
export type { DrayEvent, EventBus } from "./events/event-bus.js";
export { subjects } from "./events/subjects.js";
