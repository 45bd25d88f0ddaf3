/**
 * The agent's session-epoch fence (issue 13), on a real target database: a
 * write sent under an older session epoch than the newest the agent has been
 * given is answered FAILED_PRECONDITION (`stale_session_epoch`, both epochs in
 * the message) and writes nothing, while writes of the current session (and
 * of a control plane that sends no epoch) land; the refusal is logged once
 * per stale epoch.
 */
import { create } from "@bufbuild/protobuf";
import { type LogFields, type Logger, silentLogger } from "@dray/common";
import { ErrorCode, RejectPolicy, RowEncoding, TaskSchema, WriteStrategy } from "@dray/proto";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createAgent } from "../src/agent.js";
import { type CompletedTask, enrolledCredentials, fakeGateway } from "./support/fake-gateway.js";
import { createOwnDatabase, type OwnDatabase } from "./support/own-database.js";

let db: OwnDatabase;

beforeAll(async () => {
  db = await createOwnDatabase(
    inject("databaseUrl"),
    "create table items (id bigint primary key, name text)",
  );
}, 60_000);

afterAll(async () => db?.drop());

/** A logger that keeps its warnings. */
function recordingLogger(warnings: { message: string; fields?: LogFields }[]): Logger {
  const logger: Logger = {
    ...silentLogger,
    warn: (message, fields) => warnings.push({ message, ...(fields ? { fields } : {}) }),
    child: () => logger,
  };
  return logger;
}

const session = (epoch: bigint) => ({ kind: { case: "session", value: { sessionEpoch: epoch } } });

function writeTask(taskId: string, epoch: bigint, ids: number[]) {
  const data = Buffer.from(ids.map((id) => `${id}\titem ${id}\n`).join(""), "utf8");
  return {
    kind: {
      case: "task",
      value: create(TaskSchema, {
        taskId,
        deadlineUnixMs: BigInt(Date.now() + 20_000),
        sessionEpoch: epoch,
        kind: {
          case: "writeBatch",
          value: {
            batchId: `batch-${taskId}`,
            entity: { schema: "public", name: "items" },
            strategy: WriteStrategy.INSERT,
            keyFields: ["id"],
            rows: { encoding: RowEncoding.COPY_TEXT, fields: ["id", "name"], rowCount: ids.length, data },
            rejectPolicy: RejectPolicy.FAIL,
          },
        },
      }),
    },
  };
}

async function resultOf(results: CompletedTask[], taskId: string): Promise<CompletedTask> {
  const until = Date.now() + 15_000;
  for (;;) {
    const found = results.find((r) => r.taskId === taskId);
    if (found) return found;
    if (Date.now() > until) throw new Error(`no result for ${taskId}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const ids = async () =>
  (await db.sql<{ id: string }[]>`select id from items order by id`).map((r) => Number(r.id));
const ledger = async (batchId: string) =>
  (
    await db.sql<
      { n: number }[]
    >`select count(*)::int as n from dray.batch_ledger where batch_id = ${batchId}`
  )[0]!.n;

describe("the agent's session-epoch fence", () => {
  it("refuses a write of an older session without touching the target, and runs the current session's", async () => {
    const fake = fakeGateway();
    const warnings: { message: string; fields?: LogFields }[] = [];
    const credentials = enrolledCredentials();
    const agent = createAgent({
      config: {
        enrollmentToken: undefined,
        name: "epoch",
        maxTasks: 4,
        drainTimeoutMs: 5_000,
        controlPlane: { address: "x", tls: false },
      },
      connector: db.connector,
      gateway: fake.gateway,
      credentials,
      logger: recordingLogger(warnings),
    });
    try {
      await agent.start();
      // Replica A's session (epoch 7) writes.
      fake.push(session(7n));
      fake.push(writeTask("a1", 7n, [1, 2, 3]));
      expect((await resultOf(fake.results, "a1")).outcome.case).toBe("result");
      expect(await ids()).toEqual([1, 2, 3]);

      // A newer session (epoch 8, replica B) reaches the agent; A still sends under epoch 7.
      fake.push(session(8n));
      fake.push(writeTask("a2", 7n, [4, 5, 6]));
      fake.push(writeTask("a3", 7n, [7]));
      const refused = await resultOf(fake.results, "a2");
      expect(refused.outcome.case).toBe("error");
      expect(refused.outcome.value.code).toBe(ErrorCode.FAILED_PRECONDITION);
      expect(refused.outcome.value.reason).toBe("stale_session_epoch");
      expect(refused.outcome.value.message).toMatch(/epoch 7\b.*epoch 8\b/);
      expect((await resultOf(fake.results, "a3")).outcome.value.reason).toBe("stale_session_epoch");

      // B's write runs; so does one from a control plane that sends no epoch (0).
      fake.push(writeTask("b1", 8n, [10, 11]));
      expect((await resultOf(fake.results, "b1")).outcome.case).toBe("result");
      fake.push(writeTask("old-cp", 0n, [20]));
      expect((await resultOf(fake.results, "old-cp")).outcome.case).toBe("result");

      // Nothing of A's stale writes reached the target, not even its ledger.
      expect(await ids()).toEqual([1, 2, 3, 10, 11, 20]);
      expect(await ledger("batch-a2")).toBe(0);
      expect(await ledger("batch-a3")).toBe(0);
      expect(await ledger("batch-b1")).toBe(1);
      // One warning for epoch 7, not one per task.
      const stale = warnings.filter((w) => w.fields?.reason === "stale_session_epoch");
      expect(stale).toHaveLength(1);
      expect(stale[0]!.fields).toMatchObject({ sessionEpoch: "7", currentEpoch: "8" });
    } finally {
      await agent.stop("test over");
    }
  });
});
