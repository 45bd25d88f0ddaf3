// Preloaded into the Dray processes by `pnpm bench --cpu-prof` through
// NODE_OPTIONS=--import=…: Node 20 refuses --cpu-prof in NODE_OPTIONS, so this
// does the same with the inspector's Profiler and writes
// $BENCH_CPU_PROF_DIR/CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile on exit
// (a graceful stop; a SIGKILLed process leaves no profile).
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { join } from "node:path";
import { isMainThread, threadId } from "node:worker_threads";

const dir = process.env.BENCH_CPU_PROF_DIR;
if (dir && isMainThread) {
  const session = new Session();
  session.connect();
  session.post("Profiler.enable");
  session.post("Profiler.setSamplingInterval", {
    interval: Number(process.env.BENCH_CPU_PROF_INTERVAL_US ?? 1000),
  });
  session.post("Profiler.start");
  process.on("exit", () => {
    // The main thread's session answers synchronously, so this runs before the process ends.
    session.post("Profiler.stop", (error, result) => {
      if (error || !result) return;
      const now = new Date();
      const pad = (n) => String(n).padStart(2, "0");
      const date = `${now.getFullYear()}${pad(now.getMonth() + 1)}${pad(now.getDate())}`;
      const time = `${pad(now.getHours())}${pad(now.getMinutes())}${pad(now.getSeconds())}`;
      writeFileSync(
        join(dir, `CPU.${date}.${time}.${process.pid}.${threadId}.001.cpuprofile`),
        JSON.stringify(result.profile),
      );
    });
  });
}
