/** Version of the Dray software, reported by agents and the control plane. */
export const DRAY_VERSION = "0.1.0";
