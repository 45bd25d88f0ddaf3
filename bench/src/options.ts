/** Command-line options of `pnpm bench`. */
import type { Shape } from "./real-schema-dataset.js";

export interface BenchOptions {
  /** Contacts rows at 1× (accounts = rows / 100, at least 100). */
  rows: number;
  /** Also run at twice the rows, with fresh processes, to see whether memory stays flat. */
  double: boolean;
  /** Pipeline batch size; undefined leaves Dray's default. */
  batchSize: number | undefined;
  /** Keep the databases (source, target, store) instead of dropping them. */
  keep: boolean;
  /** Run the Dray processes with --cpu-prof and print each profile's top self-time functions. */
  cpuProf: boolean;
  /** Write the results into bench/RESULTS.md. */
  record: boolean;
  /** Give up on one execution after this many seconds. */
  timeoutSeconds: number;
  /** Times each copy is timed (the fastest counts). */
  repeat: number;
  /** Longest wait, before each timed copy, for the machine to go quiet; 0: do not wait. */
  quietWaitSeconds: number;
  /** `pg-restore`: compare against pg_dump | pg_restore on generated real schemas instead (issue 10). */
  compare: "pg-restore" | undefined;
  /** Shapes of the comparison, in order. */
  shapes: Shape[];
  /** Comparison: `payment` partitioned (false: a plain table). */
  partitions: boolean;
  /** Comparison: the last_update trigger. */
  triggers: boolean;
  /** Comparison: the Dray pipeline's loadOrder (undefined: Dray's default). */
  loadOrder: "dependencies" | "parallel" | undefined;
  /**
   * `--transform` (issue 11): at --rows only, the COPY pipe, a Dray copy and a Dray transform copy
   * (three transformed contacts fields), and each transformer's speed; prints only.
   */
  transform: boolean;
  /**
   * `--ui-latency` (issue 12): the delay from a batch's commit to the Execution Monitor's DOM in
   * Chromium, over a copy of --rows contacts in batches of --batch-size (default 2,000); prints only.
   */
  uiLatency: boolean;
  /**
   * `--routing` (issue 13): latency of commands routed to agents held by another control-plane
   * replica, and one replica's RSS with many agents connected; recorded in RESULTS.md.
   */
  routing: boolean;
  /** `--routing`: replica processes, simulated agents, commands, commands in flight. */
  routingReplicas: number;
  routingAgents: number;
  routingCommands: number;
  /** `--routing`: levels of commands in flight; `routingCommands` are sent at each. */
  routingConcurrency: number[];
  /** `--routing`: run the replicas from this compiled bundle (`pnpm build`) instead of through tsx. */
  routingBundle: string | undefined;
  /** `--routing`: agents connected to one replica for its RSS (0: not measured). */
  routingPerReplicaAgents: number;
  /** The arguments as given, for the report. */
  argv: string[];
}

export const USAGE = `Usage: pnpm bench [-- options]

  --rows N          contacts rows at 1x (default 1000000; 100k and 1m work too);
                    accounts = rows/100, at least 100
  --no-double       skip the run at twice the rows
  --batch-size N    pipeline batchSize (default: Dray's default)
  --keep            keep the databases it creates
  --cpu-prof        run the Dray processes with --cpu-prof (profiles in bench/profiles/)
                    and print the top 15 self-time functions of each
  --no-record       do not write bench/RESULTS.md
  --timeout S       give up on one execution after S seconds (default 600)
  --repeat N        time each copy N times and report the fastest (default 1)
  --quiet-wait S    before each timed copy, wait up to S seconds for the machine to be
                    idle (other sessions' work disturbs the figures; default 60, 0: no wait)
  --compare pg-restore
                    instead: pg_dump --data-only -Fc | pg_restore --data-only --disable-triggers
                    against a Dray merge, on the same generated schema and rows (prints only;
                    --repeat, --batch-size, --keep, --timeout, --quiet-wait apply)
  --shape S         with --compare: small (11 tables, 15,607 rows, FKs, a self-reference,
                    a partitioned table, triggers), large (3 tables, 1.5M rows) or both (default)
  --without-partitions  with --compare: payment is a plain table
  --without-triggers    with --compare: no last_update trigger
  --load-order O        with --compare: the Dray pipeline's loadOrder, dependencies or parallel
                        (default: Dray's default)
  --transform       instead: the COPY pipe, a Dray copy (action copy) and a Dray transform copy
                    (action transform: email → email, phone → regexp_replace \\d{4}$ → XXXX,
                    last_name → hash) of --rows contacts, checked, with each transformer's
                    values/s per core (prints only; --repeat, --batch-size, --keep, --timeout,
                    --quiet-wait, --cpu-prof apply)
  --ui-latency      instead: the delay from each batch's commit to the Execution Monitor's page in
                    Chromium (median, 95th percentile, max) over a copy of --rows contacts in
                    batches of --batch-size (default 2,000); prints only
  --routing         instead: 3 control-plane replicas on one store and NATS, 200 simulated agents
                    spread over them, 10,000 commands routed to agents held by another replica
                    (latency p50/p99/max, lost), one API Test Connection per agent through a
                    replica that does not hold it, then 1,000 agents on one replica and its RSS;
                    recorded in RESULTS.md (--no-record: print only; --keep applies)
  --replicas N      with --routing: replica processes (default 3)
  --agents N        with --routing: simulated agents (default 200)
  --commands N      with --routing: routed commands at each concurrency (default 10000)
  --concurrency L   with --routing: commands in flight, one level or a list run in turn
                    (default 4,16)
  --agents-per-replica N
                    with --routing: agents on one replica for its RSS (default 1000; 0: skip)
  --control-plane-bundle PATH
                    with --routing: run the replicas from a compiled bundle
                    (pnpm build → dist/control-plane/dist/bin/dray-control-plane.mjs), as a
                    container does, instead of the TypeScript source through tsx
  --file-load       instead: one generated CSV (--file-mb N, default 1024) uploaded to a files
                    pipeline and loaded; upload MiB/s, load rows/s and the peak RSS of the control
                    plane and the target agent (prints only; bench/file-load.ts, --timeout S, --keep-file)
  --help            this text

Database: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres).
NATS (--routing): BENCH_NATS_URL (default nats://127.0.0.1:4222).`;

/** Parses `100000`, `100k`, `1m`, `1e6`, `1_000_000`. */
export function parseCount(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?(?:e\d+)?)([km]?)$/i.exec(text.replace(/[_,]/g, ""));
  if (!m) throw new Error(`${what}: not a number: ${JSON.stringify(text)}`);
  const unit = m[2]?.toLowerCase() === "k" ? 1_000 : m[2]?.toLowerCase() === "m" ? 1_000_000 : 1;
  const value = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${what}: must be a positive integer`);
  return value;
}

export function parseOptions(args: string[]): BenchOptions | "help" {
  const argv = args[0] === "--" ? args.slice(1) : [...args];
  const options: BenchOptions = {
    rows: 1_000_000,
    double: true,
    batchSize: undefined,
    keep: false,
    cpuProf: false,
    record: true,
    timeoutSeconds: 600,
    quietWaitSeconds: 60,
    repeat: 1,
    compare: undefined,
    shapes: ["small", "large"],
    partitions: true,
    triggers: true,
    loadOrder: undefined,
    transform: false,
    uiLatency: false,
    routing: false,
    routingReplicas: 3,
    routingAgents: 200,
    routingCommands: 10_000,
    routingConcurrency: [4, 16],
    routingPerReplicaAgents: 1_000,
    routingBundle: undefined,
    argv,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.includes("=")
      ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)]
      : [arg, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case "--":
        break;
      case "--rows":
        options.rows = parseCount(value(), "--rows");
        break;
      case "--no-double":
        options.double = false;
        break;
      case "--double":
        options.double = true;
        break;
      case "--batch-size":
        options.batchSize = parseCount(value(), "--batch-size");
        break;
      case "--keep":
        options.keep = true;
        break;
      case "--cpu-prof":
        options.cpuProf = true;
        break;
      case "--no-record":
        options.record = false;
        break;
      case "--timeout":
        options.timeoutSeconds = parseCount(value(), "--timeout");
        break;
      case "--repeat":
        options.repeat = parseCount(value(), "--repeat");
        break;
      case "--quiet-wait": {
        const v = value();
        options.quietWaitSeconds = v === "0" ? 0 : parseCount(v, "--quiet-wait");
        break;
      }
      case "--compare": {
        const v = value();
        if (v !== "pg-restore")
          throw new Error(`--compare: only "pg-restore" is known, not ${JSON.stringify(v)}`);
        options.compare = v;
        break;
      }
      case "--shape": {
        const v = value();
        if (v === "both") options.shapes = ["small", "large"];
        else if (v === "small" || v === "large") options.shapes = [v];
        else throw new Error(`--shape: small, large or both, not ${JSON.stringify(v)}`);
        break;
      }
      case "--without-partitions":
        options.partitions = false;
        break;
      case "--without-triggers":
        options.triggers = false;
        break;
      case "--load-order": {
        const v = value();
        if (v !== "dependencies" && v !== "parallel")
          throw new Error(`--load-order: dependencies or parallel, not ${JSON.stringify(v)}`);
        options.loadOrder = v;
        break;
      }
      case "--transform":
        options.transform = true;
        break;
      case "--ui-latency":
        options.uiLatency = true;
        break;
      case "--routing":
        options.routing = true;
        break;
      case "--replicas":
        options.routingReplicas = parseCount(value(), "--replicas");
        break;
      case "--agents":
        options.routingAgents = parseCount(value(), "--agents");
        break;
      case "--commands":
        options.routingCommands = parseCount(value(), "--commands");
        break;
      case "--concurrency":
        options.routingConcurrency = value()
          .split(",")
          .map((v) => parseCount(v.trim(), "--concurrency"));
        break;
      case "--control-plane-bundle":
        options.routingBundle = value();
        break;
      case "--agents-per-replica": {
        const v = value();
        options.routingPerReplicaAgents = v === "0" ? 0 : parseCount(v, "--agents-per-replica");
        break;
      }
      case "--help":
      case "-h":
        return "help";
      default:
        throw new Error(`unknown option ${JSON.stringify(arg)}\n\n${USAGE}`);
    }
  }
  if (options.transform && options.compare)
    throw new Error("--transform and --compare are separate benchmarks: give one of them");
  if (options.routing && (options.transform || options.compare || options.uiLatency))
    throw new Error("--routing is a separate benchmark: give it alone");
  return options;
}

/** Accounts generated for `rows` contacts. */
export function accountsFor(rows: number): number {
  return Math.max(100, Math.floor(rows / 100));
}
