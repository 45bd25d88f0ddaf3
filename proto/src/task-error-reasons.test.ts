import { describe, expect, it } from "vitest";
import { TaskErrorReason } from "./gen/dray/agent/v1/agent_pb.js";
import { TASK_ERROR_REASONS, taskErrorReasonFromWire, taskErrorReasonToWire } from "./task-error-reasons.js";

describe("task error reasons", () => {
  it("go over the wire as the enum and come back as their names", () => {
    for (const name of Object.values(TASK_ERROR_REASONS)) {
      const code = taskErrorReasonToWire(name);
      expect(code).not.toBe(TaskErrorReason.UNSPECIFIED);
      expect(taskErrorReasonFromWire({ reasonCode: code, reason: "" })).toBe(name);
    }
  });

  it("read the text of an agent older than the enum, and nothing when there is no reason", () => {
    expect(taskErrorReasonFromWire({ reasonCode: TaskErrorReason.UNSPECIFIED, reason: "batch_sealed" })).toBe(
      "batch_sealed",
    );
    expect(taskErrorReasonFromWire({ reasonCode: TaskErrorReason.UNSPECIFIED, reason: "" })).toBeUndefined();
    expect(taskErrorReasonToWire("no_such_reason")).toBe(TaskErrorReason.UNSPECIFIED);
    expect(taskErrorReasonToWire(undefined)).toBe(TaskErrorReason.UNSPECIFIED);
  });
});
