/**
 * `--routing` (issue 13): how fast a task reaches an agent held by another
 * control-plane replica, and what 1,000 connected agents cost one replica.
 *
 * 1. **Routing.** `replicas` real control-plane processes on one fresh store and
 *    NATS; `agents` simulated agents (routing-agent.ts), agent i on replica
 *    i mod `replicas`. The bench process opens the control plane's own
 *    {@link TaskRelay} on the same NATS, holding no agent: every command it sends
 *    is a remote one, the path a replica takes for an agent it does not hold
 *    (NATS request on `dray_internal.agents.<environmentId>` → the holding
 *    replica → the agent's work stream → CompleteTask → the holder → NATS reply).
 *    `commands` `count` tasks at each level of `concurrency` (commands in flight), each tagged with its id
 *    in the entity name. Measured on this process's clock: command → the task
 *    comes off the agent's work stream ("to agent": the owning replica received
 *    it and forwarded it), and command → result back ("round trip").
 *    Then one Test Connection per agent through the HTTP API of a replica that
 *    does not hold it (`POST /environments/{id}/test`: auth, store reads and the
 *    `last_test_at` write included; the API allows 6 per environment a minute).
 * 2. **Memory.** A fresh replica process; `perReplicaAgents` simulated agents all
 *    on it. Its VmRSS idle, once they are all connected and have heartbeated,
 *    and after one routed command to each; VmHWM at the end.
 */

import { writeFile } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import { join } from "node:path";
import { DrayError, type Logger } from "@dray/common";
import { openTaskRelay, type TaskRelay } from "../../control-plane/src/gateway/task-relay.js";
import { type ProfileSummary, readProfiles } from "./cpu-profile.js";
import { cpuSeconds, machineCpu, statusBytes, waitForQuiet } from "./proc-stats.js";
import type { ReceivedTask, SimulatedAgent } from "./routing-agent.js";
import { forEachLimited, type LatencySummary, summarise, targetOf } from "./routing-latency.js";
import { type RoutingEnvironment, type RoutingReplica, startRoutingReplicas } from "./routing-stack.js";

/** Options of {@link runRoutingBench}. */
export interface RoutingBenchOptions {
  baseUrl: string;
  natsUrl: string;
  replicas: number;
  agents: number;
  commands: number;
  /** Commands in flight; `commands` are sent at each level, in order. */
  concurrency: number[];
  /** Before each level of routed commands, wait up to this long for the machine to be idle (0: no wait). */
  quietWaitMs: number;
  /** Agents connected to one replica for the memory measurement (0: skip it). */
  perReplicaAgents: number;
  keep: boolean;
  /** Run the replicas from this compiled bundle instead of the TypeScript source (through tsx). */
  bundle: string | undefined;
  /** Profile the replicas and this process over the routed commands into this directory. */
  cpuProfileDir: string | undefined;
  logPrefix: string;
  log: (line: string) => void;
  onInterrupt: (cleanup: () => Promise<void>) => () => void;
}

/** Latencies of one set of commands. */
export interface CommandFigures {
  sent: number;
  /** Commands that failed, or whose task never reached the agent. */
  lost: number;
  /** Command → task off the agent's work stream. */
  toAgent: LatencySummary;
  /** Command → result back with the sender. */
  roundTrip: LatencySummary;
  wallMs: number;
  /** CPU milliseconds per command: the bench process (sender and simulated agents) and the replicas together. */
  cpuPerCommand: { bench: number; replicas: number };
  /**
   * Cores busy on average with other work meanwhile (the machine's CPU time less the bench's and the
   * replicas'; NATS and Postgres included): a disturbance when well above 0.1.
   */
  otherCores: number;
  /** The first few failures, verbatim. */
  errors: string[];
}

/** RSS of one replica process, bytes. */
export interface ReplicaMemory {
  name: string;
  rss: number | undefined;
  hwm: number | undefined;
}

/** The memory measurement. */
export interface MemoryFigures {
  agents: number;
  idleRss: number | undefined;
  connectedRss: number | undefined;
  afterCommandsRss: number | undefined;
  /** Highest VmRSS sampled every 200 ms from before the first agent to the end. */
  peakRss: number | undefined;
  hwm: number | undefined;
  connectMs: number;
  commands: CommandFigures & { concurrency: number };
}

/** Everything one `--routing` run measured. */
export interface RoutingResult {
  /** How the replicas ran: "TypeScript source through tsx" or the bundle's path. */
  runtime: string;
  replicas: number;
  agents: number;
  /** Agents held per replica (from the store's agent_sessions). */
  spread: number[];
  /** The routed commands at each level of concurrency. */
  relay: (CommandFigures & { concurrency: number })[];
  api: CommandFigures | undefined;
  replicaMemory: ReplicaMemory[];
  memory: MemoryFigures | undefined;
  /** With `cpuProfileDir`: self time per function over the routed commands, per process. */
  profiles: (ProfileSummary & { process: string })[];
  error: string | undefined;
  logs: string[];
}

const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};

/** Receipts of tasks by the simulated agents, keyed by command tag (count) or environment (test connection). */
class Receipts {
  readonly byTag = new Map<string, number>();
  readonly byEnvironment = new Map<string, number>();
  readonly record = (task: ReceivedTask) => {
    if (task.kind === "count") this.byTag.set(task.tag, task.at);
    else if (task.kind === "testConnection") this.byEnvironment.set(task.environmentId, task.at);
  };
}

const errorText = (error: unknown) =>
  error instanceof DrayError ? `${error.code}: ${error.message}` : String(error);

/** Sends `count` commands through the relay, `concurrency` at a time; command i goes to agent `target(i)`. */
async function relayCommands(
  relay: TaskRelay,
  environments: readonly RoutingEnvironment[],
  receipts: Receipts,
  count: number,
  concurrency: number,
  tagPrefix: string,
  target: (i: number) => number,
  replicaPids: readonly number[],
): Promise<CommandFigures> {
  const toAgent: number[] = [];
  const roundTrip: number[] = [];
  const errors: string[] = [];
  let lost = 0;
  const cpu = cpuMeter(replicaPids);
  const t0 = performance.now();
  await forEachLimited(count, concurrency, async (i) => {
    const environment = environments[target(i)]!;
    const tag = `${tagPrefix}${i}`;
    const sent = performance.now();
    try {
      await relay.dispatch(
        environment.id,
        "count",
        { entity: { schema: "bench", name: tag } },
        { timeoutMs: 10_000 },
      );
      const done = performance.now();
      const at = receipts.byTag.get(tag);
      if (at === undefined) {
        lost++;
        if (errors.length < 5) errors.push(`${tag}: answered, but the agent never saw the task`);
        return;
      }
      toAgent.push(at - sent);
      roundTrip.push(done - sent);
    } catch (error) {
      lost++;
      if (errors.length < 5) errors.push(`${tag} → ${environment.name}: ${errorText(error)}`);
    }
  });
  return {
    sent: count,
    lost,
    toAgent: summarise(toAgent),
    roundTrip: summarise(roundTrip),
    wallMs: performance.now() - t0,
    ...cpu(count),
    errors,
  };
}

/** Starts counting CPU of this process and of `pids`; the result gives milliseconds per command. */
function cpuMeter(
  pids: readonly number[],
): (commands: number) => { cpuPerCommand: { bench: number; replicas: number }; otherCores: number } {
  const replicas = () => pids.reduce((sum, pid) => sum + (cpuSeconds(pid) ?? 0), 0);
  const benchStart = process.cpuUsage();
  const replicasStart = replicas();
  const machineStart = machineCpu().busy;
  const t0 = performance.now();
  return (commands) => {
    const b = process.cpuUsage(benchStart);
    const bench = (b.user + b.system) / 1e6;
    const replicaSeconds = replicas() - replicasStart;
    const wall = (performance.now() - t0) / 1000;
    return {
      cpuPerCommand: { bench: (bench * 1000) / commands, replicas: (replicaSeconds * 1000) / commands },
      otherCores: Math.max(0, machineCpu().busy - machineStart - bench - replicaSeconds) / wall,
    };
  };
}

/** One Test Connection per environment through the API of a replica that does not hold its agent. */
async function apiCommands(
  environments: readonly RoutingEnvironment[],
  viaFor: (i: number) => RoutingReplica,
  receipts: Receipts,
  concurrency: number,
  replicaPids: readonly number[],
): Promise<CommandFigures> {
  const toAgent: number[] = [];
  const roundTrip: number[] = [];
  const errors: string[] = [];
  let lost = 0;
  const cpu = cpuMeter(replicaPids);
  const t0 = performance.now();
  await forEachLimited(environments.length, concurrency, async (i) => {
    const environment = environments[i]!;
    receipts.byEnvironment.delete(environment.id);
    const sent = performance.now();
    const r = await viaFor(i).api.post(`/api/v1/environments/${environment.id}/test`);
    const done = performance.now();
    const at = receipts.byEnvironment.get(environment.id);
    if (r.status !== 200 || at === undefined) {
      lost++;
      if (errors.length < 5) errors.push(`${environment.name}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
      return;
    }
    toAgent.push(at - sent);
    roundTrip.push(done - sent);
  });
  return {
    sent: environments.length,
    lost,
    toAgent: summarise(toAgent),
    roundTrip: summarise(roundTrip),
    wallMs: performance.now() - t0,
    ...cpu(environments.length),
    errors,
  };
}

/** Sends one untimed command to each agent, retrying while its replica has not subscribed yet. */
async function warmUp(relay: TaskRelay, environments: readonly RoutingEnvironment[]): Promise<void> {
  await forEachLimited(environments.length, 16, async (i) => {
    const environment = environments[i]!;
    for (let attempt = 0; ; attempt++) {
      try {
        await relay.dispatch(
          environment.id,
          "count",
          { entity: { schema: "bench", name: `warm${i}` } },
          { timeoutMs: 10_000 },
        );
        return;
      } catch (error) {
        if (attempt >= 50) throw new Error(`warm-up of ${environment.name}: ${errorText(error)}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  });
}

/** Profiles this process (the sender and the simulated agents) until `stop`, which writes the profile. */
function startSelfProfile(): { stop(dir: string): Promise<void> } {
  const session = new Session();
  session.connect();
  const started = (async () => {
    await session.post("Profiler.enable");
    await session.post("Profiler.setSamplingInterval", { interval: 1000 });
    await session.post("Profiler.start");
  })();
  return {
    async stop(dir) {
      await started;
      const { profile } = await session.post("Profiler.stop");
      session.disconnect();
      await writeFile(join(dir, `CPU.bench.bench.${process.pid}.0.001.cpuprofile`), JSON.stringify(profile));
    },
  };
}

/** See the module comment. */
export async function runRoutingBench(o: RoutingBenchOptions): Promise<RoutingResult> {
  const result: RoutingResult = {
    runtime: o.bundle ? `compiled bundle ${o.bundle}` : "TypeScript source through tsx",
    replicas: o.replicas,
    agents: o.agents,
    spread: [],
    relay: [],
    api: undefined,
    replicaMemory: [],
    memory: undefined,
    profiles: [],
    error: undefined,
    logs: [],
  };
  o.log(`starting ${o.replicas} control-plane replicas on one store and ${o.natsUrl}`);
  const stack = await startRoutingReplicas({
    baseUrl: o.baseUrl,
    natsUrl: o.natsUrl,
    count: o.replicas,
    logPrefix: o.logPrefix,
    cpuProfileDir: o.cpuProfileDir,
    bundle: o.bundle,
  });
  const window = { fromUs: 0, toUs: 0 };
  const agents: SimulatedAgent[] = [];
  let relay: TaskRelay | undefined;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    for (const a of agents) a.close();
    await relay?.close().catch(() => {});
    await stack.close(o.keep);
  };
  const forget = o.onInterrupt(close);
  const receipts = new Receipts();
  try {
    const replicas = [...stack.replicas];
    relay = await openTaskRelay(
      o.natsUrl,
      async () => {
        throw new DrayError("internal", "the bench's relay holds no agent");
      },
      silentLogger,
    );

    o.log(`creating ${o.agents} environments and connecting their simulated agents`);
    const environments = await stack.createEnvironments(o.agents, "route", replicas[0]!);
    agents.push(
      ...(await stack.connectAgents(environments, (i) => replicas[i % replicas.length]!, receipts.record, {
        concurrency: 16,
        maxConcurrentTasks: 4,
        timeoutMs: 120_000,
      })),
    );
    result.spread = [...(await stack.holders(environments.map((e) => e.id))).values()].sort((a, b) => b - a);
    o.log(`agents held per replica: ${result.spread.join(", ")}; warming up (one command per agent)`);
    await warmUp(relay, environments);

    const profiler = o.cpuProfileDir ? startSelfProfile() : undefined;
    window.fromUs = Number(process.hrtime.bigint() / 1000n);
    for (const [level, concurrency] of o.concurrency.entries()) {
      if (o.quietWaitMs > 0) {
        const quiet = await waitForQuiet(o.quietWaitMs, 0.3);
        o.log(
          `waited ${(quiet.waitedMs / 1000).toFixed(0)} s for the machine to be idle (${quiet.cores.toFixed(2)} cores busy)`,
        );
      }
      o.log(`routing ${o.commands} commands, ${concurrency} in flight`);
      const figures = await relayCommands(
        relay,
        environments,
        receipts,
        o.commands,
        concurrency,
        `c${level}-`,
        (i) => targetOf(i, environments.length),
        replicas.map((r) => r.pid),
      );
      result.relay.push({ ...figures, concurrency });
      o.log(
        `${figures.sent - figures.lost}/${figures.sent} answered in ${(figures.wallMs / 1000).toFixed(1)} s, ` +
          `command → agent p50 ${figures.toAgent.p50.toFixed(1)} ms, p99 ${figures.toAgent.p99.toFixed(1)} ms`,
      );
    }
    window.toUs = Number(process.hrtime.bigint() / 1000n);
    if (profiler && o.cpuProfileDir) await profiler.stop(o.cpuProfileDir);

    o.log(`one Test Connection per agent through the API of a replica that does not hold it`);
    result.api = await apiCommands(
      environments,
      (i) => replicas[(i + 1) % replicas.length]!,
      receipts,
      8,
      replicas.map((r) => r.pid),
    );
    result.replicaMemory = replicas.map((r) => ({
      name: r.name,
      rss: statusBytes(r.pid, "VmRSS"),
      hwm: statusBytes(r.pid, "VmHWM"),
    }));
    for (const a of agents.splice(0)) a.close();

    if (o.perReplicaAgents > 0) result.memory = await measureMemory(o, stack, relay, receipts, agents);
  } catch (error) {
    result.error = error instanceof Error ? (error.stack ?? error.message) : String(error);
  } finally {
    await close();
    forget();
    result.logs = stack.replicas.map((r) => `${o.logPrefix}-${r.name}.log`);
  }
  if (o.cpuProfileDir && window.toUs > 0) {
    const names = new Map<number, string>([[process.pid, "bench (sender + simulated agents)"]]);
    for (const r of stack.replicas) names.set(r.pid, r.name);
    for (const p of await readProfiles(o.cpuProfileDir, 15, [window]))
      result.profiles.push({ ...p, process: names.get(p.pid) ?? `pid ${p.pid}` });
  }
  return result;
}

/** Part 2 of the module comment: `perReplicaAgents` agents on one fresh replica. */
async function measureMemory(
  o: RoutingBenchOptions,
  stack: Awaited<ReturnType<typeof startRoutingReplicas>>,
  relay: TaskRelay,
  receipts: Receipts,
  agents: SimulatedAgent[],
): Promise<MemoryFigures> {
  const first = stack.replicas[0]!;
  const replica = await stack.addReplica();
  o.log(`memory: ${replica.name} (pid ${replica.pid}) started; creating ${o.perReplicaAgents} environments`);
  // The environments are created through another replica, so that their API work is not counted here.
  const environments = await stack.createEnvironments(o.perReplicaAgents, "mem", first);
  const idleRss = statusBytes(replica.pid, "VmRSS");
  let peakRss = idleRss ?? 0;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, statusBytes(replica.pid, "VmRSS") ?? 0);
  }, 200);
  try {
    o.log(`memory: connecting ${o.perReplicaAgents} agents to ${replica.name}`);
    const t0 = performance.now();
    agents.push(
      ...(await stack.connectAgents(environments, () => replica, receipts.record, {
        concurrency: 16,
        maxConcurrentTasks: 4,
        timeoutMs: 300_000,
      })),
    );
    const connectMs = performance.now() - t0;
    // Every agent heartbeats once per interval (10 s by default): wait for a full round.
    o.log(`memory: all connected in ${(connectMs / 1000).toFixed(1)} s; waiting 12 s (one heartbeat round)`);
    await new Promise((resolve) => setTimeout(resolve, 12_000));
    const connectedRss = statusBytes(replica.pid, "VmRSS");
    o.log(`memory: one routed command to each of the ${o.perReplicaAgents} agents`);
    const concurrency = Math.max(...o.concurrency);
    const commands = {
      ...(await relayCommands(
        relay,
        environments,
        receipts,
        environments.length,
        concurrency,
        "m",
        (i) => i,
        [replica.pid],
      )),
      concurrency,
    };
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const afterCommandsRss = statusBytes(replica.pid, "VmRSS");
    peakRss = Math.max(peakRss, afterCommandsRss ?? 0);
    return {
      agents: environments.length,
      idleRss,
      connectedRss,
      afterCommandsRss,
      peakRss,
      hwm: statusBytes(replica.pid, "VmHWM"),
      connectMs,
      commands,
    };
  } finally {
    clearInterval(sampler);
  }
}
