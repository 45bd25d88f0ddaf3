/**
 * A nats-server (JetStream) of one test file only, never the shared one, so a
 * test can stop and start it; plus a free-port helper.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";

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
  /** Starts it and resolves once it is ready. */
  async start(): Promise<void> {
    const child = spawn(
      "/usr/sbin/nats-server",
      ["-a", "127.0.0.1", "-p", String(this.port), ...(this.withJetStream ? ["-js", "-sd", this.dir] : [])],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    this.child = child;
    let text = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats-server did not start: ${text}`)), 10_000);
      child.stderr!.on("data", (b: Buffer) => {
        text += b.toString();
        if (text.includes("Server is ready")) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  }
  /** Kills it (SIGKILL) and waits for its exit. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGKILL");
    await once(child, "exit");
  }
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  server.close();
  await once(server, "close");
  return typeof address === "object" && address ? address.port : 0;
}
