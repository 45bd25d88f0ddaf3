import { DrayError } from "@dray/common";
import { describe, expect, it } from "vitest";
import { PreflightFailed } from "./preflight.js";
import {
  AgentUnavailable,
  abortKindOf,
  BatchFailed,
  RecordLimitReached,
  RunAborted,
  reasonCodeOf,
} from "./run-errors.js";

describe("run errors", () => {
  it("abort a run with an error that has a code and prints its message", () => {
    const controller = new AbortController();
    controller.abort(new RunAborted("cancel", "cancelled by ada"));
    expect(abortKindOf(controller.signal)).toBe("cancel");
    const reason = DrayError.from(controller.signal.reason);
    expect(reason.code).toBe("cancelled");
    expect(reason.message).toBe("cancelled by ada");
    expect(String(controller.signal.reason)).not.toContain("[object Object]");
    const lost = new AbortController();
    lost.abort(new RunAborted("lost", "the lease was lost"));
    expect(abortKindOf(lost.signal)).toBe("lost");
    expect(DrayError.from(lost.signal.reason).code).toBe("aborted");
  });

  it("say nothing of a signal that did not abort, or aborted otherwise", () => {
    expect(abortKindOf(new AbortController().signal)).toBeUndefined();
    expect(abortKindOf(AbortSignal.abort("why"))).toBeUndefined();
  });

  it("carry their own reason codes", () => {
    expect(reasonCodeOf(new RecordLimitReached("limit", {}))).toBe("monthly_record_limit");
    expect(reasonCodeOf(new BatchFailed("internal", "batch 3 failed"))).toBe("batch_failed");
    expect(reasonCodeOf(new AgentUnavailable("unavailable", "away"))).toBe("agent_unavailable");
    expect(reasonCodeOf(new PreflightFailed("environment_unhealthy", "down"))).toBe("environment_unhealthy");
    expect(reasonCodeOf(new DrayError("internal", "boom"))).toBe("internal");
    expect(reasonCodeOf(new Error("boom"))).toBe("internal");
    expect(reasonCodeOf(undefined)).toBe("internal");
  });
});
