/** `--routing`: its tables (as text and Markdown) and its RESULTS.md section. */
import type { Machine } from "./machine.js";
import { renderMarkdown, type Table } from "./report.js";
import type { LatencySummary } from "./routing-latency.js";
import type { CommandFigures, RoutingResult } from "./run-routing.js";

/** The targets. */
export const ROUTING_TARGETS = { p99Ms: 50, rssBytes: 200 * 1024 * 1024, agentsPerReplica: 1_000 };

const ms = (v: number) => (Number.isNaN(v) ? "–" : v < 10 ? v.toFixed(2) : v.toFixed(1));
const mib = (bytes: number | undefined) =>
  bytes === undefined ? "–" : `${(bytes / 1048576).toFixed(0)} MiB`;
const int = (n: number) => Math.round(n).toLocaleString("en");

function latencyRow(label: string, what: string, f: CommandFigures, s: LatencySummary): string[] {
  return [
    label,
    what,
    int(f.sent),
    int(f.lost),
    ms(s.p50),
    ms(s.p90),
    ms(s.p99),
    ms(s.max),
    int(f.sent / (f.wallMs / 1000)),
    what.endsWith("→ agent")
      ? `${f.cpuPerCommand.bench.toFixed(2)} + ${f.cpuPerCommand.replicas.toFixed(2)}`
      : "",
    what.endsWith("→ agent") ? f.otherCores.toFixed(2) : "",
  ];
}

/** Latency of the routed commands: relay, API, and the commands to the 1,000 agents of one replica. */
export function latencyTable(r: RoutingResult): Table {
  const rows: string[][] = [];
  for (const f of r.relay) {
    rows.push(latencyRow(`routed count, ${f.concurrency} in flight`, "command → agent", f, f.toAgent));
    rows.push(latencyRow("", "round trip", f, f.roundTrip));
  }
  if (r.api) {
    rows.push(latencyRow("API Test Connection, 8 in flight", "request → agent", r.api, r.api.toAgent));
    rows.push(latencyRow("", "HTTP round trip", r.api, r.api.roundTrip));
  }
  if (r.memory) {
    const m = r.memory.commands;
    rows.push(
      latencyRow(
        `routed count, ${int(r.memory.agents)} agents on 1 replica`,
        "command → agent",
        m,
        m.toAgent,
      ),
    );
    rows.push(latencyRow("", "round trip", m, m.roundTrip));
  }
  return {
    title: `Routing latency, ms (${r.replicas} replicas, ${r.agents} agents; target p99 command → agent ≤ ${ROUTING_TARGETS.p99Ms} ms, 0 lost)`,
    head: [
      "commands",
      "measured",
      "sent",
      "lost",
      "p50",
      "p90",
      "p99",
      "max",
      "commands/s",
      "CPU ms/command: bench + replicas",
      "other load, cores",
    ],
    align: ["l", "l", "r", "r", "r", "r", "r", "r", "r", "r", "r"],
    rows,
  };
}

/** RSS of the replica holding many agents, and of the routing replicas after their run. */
export function memoryTable(r: RoutingResult): Table {
  const rows: string[][] = [];
  if (r.memory) {
    const m = r.memory;
    const per =
      m.connectedRss !== undefined && m.idleRss !== undefined
        ? `${((m.connectedRss - m.idleRss) / m.agents / 1024).toFixed(0)} KiB/agent`
        : "–";
    rows.push([`1 replica, ${int(m.agents)} agents`, "idle, before any agent", mib(m.idleRss), ""]);
    rows.push(["", "all connected, one heartbeat round later", mib(m.connectedRss), per]);
    rows.push(["", "after one routed command to each", mib(m.afterCommandsRss), ""]);
    rows.push(["", "peak VmRSS sampled (200 ms)", mib(m.peakRss), ""]);
    rows.push(["", "VmHWM at the end", mib(m.hwm), ""]);
  }
  for (const x of r.replicaMemory)
    rows.push([
      x.name,
      `after the routing run (${Math.round(r.agents / r.replicas)} agents)`,
      mib(x.rss),
      `VmHWM ${mib(x.hwm)}`,
    ]);
  return {
    title: `Control-plane RSS (target: ${ROUTING_TARGETS.agentsPerReplica.toLocaleString("en")} agents on one replica under ${mib(ROUTING_TARGETS.rssBytes)})`,
    head: ["process", "when", "VmRSS", "note"],
    align: ["l", "l", "r", "l"],
    rows,
  };
}

/** One line per target: met or not. */
export function verdictLines(r: RoutingResult): string[] {
  const out: string[] = [];
  for (const f of r.relay) {
    const ok = f.toAgent.p99 <= ROUTING_TARGETS.p99Ms && f.lost === 0;
    out.push(
      `${ok ? "met" : "NOT met"} at ${f.concurrency} in flight: p99 command → owning replica → agent ${ms(f.toAgent.p99)} ms (≤ ${ROUTING_TARGETS.p99Ms}), ${f.lost} lost of ${int(f.sent)}`,
    );
  }
  if (r.memory) {
    const rss = Math.max(r.memory.peakRss ?? 0, r.memory.connectedRss ?? 0);
    out.push(
      `${rss < ROUTING_TARGETS.rssBytes ? "met" : "NOT met"}: ${int(r.memory.agents)} agents on one replica, peak VmRSS ${mib(rss)} (< ${mib(ROUTING_TARGETS.rssBytes)}), ${r.memory.commands.lost} of ${int(r.memory.commands.sent)} commands to them lost`,
    );
  }
  for (const f of [...r.relay, r.api, r.memory?.commands])
    for (const e of f?.errors ?? []) out.push(`  failure: ${e}`);
  return out;
}

/** The RESULTS.md section of a `--routing` run. */
export function routingMarkdown(
  r: RoutingResult,
  machine: Machine,
  startedAt: Date,
  command: string,
  elapsedMs: number,
): string {
  return [
    `## ${startedAt.toISOString().slice(0, 16).replace("T", " ")} UTC — Routing: ${r.replicas} replicas, ${r.agents} agents, ${r.relay.map((f) => int(f.sent)).join(" + ")} routed commands (issue 13)`,
    "",
    `- Command: \`${command}\` (whole run ${(elapsedMs / 60000).toFixed(1)} min)`,
    `- Machine: ${machine.nproc} CPUs (${machine.cpu}), ${machine.memory} RAM; Node ${machine.node}; ${machine.postgres}; NATS on 127.0.0.1; git ${machine.git}`,
    `- Set-up: ${r.replicas} control-plane processes (${r.runtime}, ${nodeOptionsLabel()}) on one store and NATS; ${r.agents} simulated agents (the agent's gateway client, no database: they enroll, heartbeat, hold the work stream and answer at once), agent i on replica i mod ${r.replicas} (held: ${r.spread.join(", ")}). All in one bench process with the simulated agents and the sender.`,
    "- Routed commands: the bench opens the control plane's own `TaskRelay` on NATS and holds no agent, so every command is remote: NATS request on `dray_internal.agents.<environmentId>` → the owning replica → the work stream → `CompleteTask` → NATS reply. `count` tasks, each tagged with its id; command → agent is when the task came off the agent's work stream (the owning replica received and forwarded it), on the same clock as the send.",
    "- API: one `POST /environments/{id}/test` per agent through a replica that does not hold it (authentication, store reads, the relay and the `last_test_at` write; the API allows 6 a minute per environment).",
    "",
    renderMarkdown(latencyTable(r)),
    "",
    renderMarkdown(memoryTable(r)),
    "",
    ...verdictLines(r).map((l) => `- ${l.trim()}`),
    ...(r.error ? ["", "FAILED:", "", "```text", r.error, "```"] : []),
    "",
  ].join("\n");
}

/** The Node options the bench gave the replicas (routing-stack.ts): BENCH_NODE_OPTIONS, else the deploy files' own. */
function nodeOptionsLabel(): string {
  const options = process.env.BENCH_NODE_OPTIONS ?? "--max-semi-space-size=64";
  return options ? `NODE_OPTIONS=${options}` : "Node's default options";
}
