import { DrayError } from "@dray/common";
import { describe, expect, it } from "vitest";
import { type SettlementInput, settleDecision } from "./batch-settlement.js";
import { AgentUnavailable } from "./run-errors.js";

const written = { alreadyCommitted: false, created: 7, updated: 2, rejected: 1, rejectedRows: [] };
const base: SettlementInput = {
  outcome: { ok: true, result: written, attempts: 2, durationMs: 5 },
  rowCount: 10,
  qualityRejected: 3,
  priorAttempts: 1,
  countRecords: true,
  stopOnError: true,
  cancelled: false,
  handedOver: false,
};
const failed = (error: unknown) => ({
  ok: false as const,
  error: Object.assign(error as object, { attempts: 4 }),
  durationMs: 5,
});

describe("settleDecision", () => {
  it("counts a written batch, its target rejects and rule rejects as skipped, and moves the checkpoint", () => {
    expect(settleDecision(base)).toMatchObject({
      kind: "settle",
      state: "succeeded",
      rejected: 4,
      attempts: 3,
      advance: true,
      counters: { created: 7, updated: 2, skipped: 4, failed: 0 },
      afterwards: "next",
    });
  });

  it("leaves the back-fill pass's counters alone", () => {
    expect(settleDecision({ ...base, countRecords: false })).not.toHaveProperty("counters");
  });

  it("with stopOnError, a failed batch stops the run and keeps the checkpoint", () => {
    const d = settleDecision({ ...base, outcome: failed(new DrayError("internal", "boom")) });
    expect(d).toMatchObject({
      state: "failed",
      advance: false,
      attempts: 5,
      afterwards: "failed",
      error: "boom",
    });
    expect(d).not.toHaveProperty("counters");
  });

  it("without stopOnError, a failed batch is skipped: its rows count as failed and the checkpoint moves", () => {
    const d = settleDecision({
      ...base,
      stopOnError: false,
      outcome: failed(new DrayError("internal", "boom")),
    });
    expect(d).toMatchObject({
      state: "skipped",
      advance: true,
      failedRecords: 10,
      rejected: 3,
      counters: { created: 0, failed: 10, skipped: 3 },
      afterwards: "skipped",
    });
  });

  it("an agent that stayed away stops the run even without stopOnError, and says the outcome is unknown", () => {
    const away = new AgentUnavailable("unavailable", "away for 30 s");
    const d = settleDecision({ ...base, stopOnError: false, outcome: failed(away) });
    expect(d).toMatchObject({ state: "failed", advance: false, afterwards: "agent_unavailable" });
    expect(d.kind === "settle" && d.error).toMatch(/whether this batch committed is unknown/);
  });

  it("a cancelled run cancels the batch; a hand-over leaves it for the next owner", () => {
    const error = new DrayError("cancelled", "stop");
    expect(settleDecision({ ...base, cancelled: true, outcome: failed(error) })).toMatchObject({
      state: "cancelled",
      afterwards: "cancelled",
      advance: false,
    });
    expect(settleDecision({ ...base, handedOver: true, outcome: failed(error) })).toMatchObject({
      kind: "hand_over",
    });
  });
});
