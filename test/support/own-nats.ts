/**
 * A nats-server (JetStream) of one test file only, never the shared one, so a
 * test can stop and start it. Used by the event-bus tests and the fault suite.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./processes.js";

/** A nats-server on `port`, with JetStream storing under `dir` unless told otherwise. */
export class OwnNats {
  private child: ChildProcess | undefined;
  constructor(
    readonly port: number,
    private readonly dir: string,
    /** Without it the server answers but stores nothing (a JetStream publish fails). */
    private readonly withJetStream = true,
  ) {}
  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }
  /** True while the server process runs. */
  get running(): boolean {
    const child = this.child;
    return !!child && child.exitCode === null && child.signalCode === null;
  }
  /** Starts it (unless it runs) and resolves once it is ready; rejects if it exits first. */
  async start(): Promise<void> {
    if (this.running) return;
    const child = spawn(
      "/usr/sbin/nats-server",
      ["-a", "127.0.0.1", "-p", String(this.port), ...(this.withJetStream ? ["-js", "-sd", this.dir] : [])],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    this.child = child;
    let text = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats-server did not start:\n${text}`)), 15_000);
      child.stderr!.on("data", (b: Buffer) => {
        text += b.toString();
        if (text.includes("Server is ready")) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", () => {
        clearTimeout(timer);
        reject(new Error(`nats-server exited:\n${text}`));
      });
    });
  }
  /** Stops it (SIGKILL by default: an outage, not a goodbye) and waits for its exit. */
  async stop(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    child.kill(signal);
    await once(child, "exit");
  }
  /** Stops it and removes its storage. */
  async remove(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Starts a nats-server with JetStream of the test's own, on a free port and a new storage dir. */
export async function startOwnNats(): Promise<OwnNats> {
  const nats = new OwnNats(await freePort(), await mkdtemp(join(tmpdir(), "dray-own-nats-")));
  await nats.start();
  return nats;
}
