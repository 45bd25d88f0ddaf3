import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    globalSetup: ["./test/global-setup.ts"],
    // On 2 cores vitest would run one file at a time; the end-to-end and fault files spend
    // most of their time waiting (outages, restarts, heartbeats), so three run at once.
    maxWorkers: 3,
    // postgres.js 3.4.x can write to a socket that has already closed, from a setImmediate where no
    // caller can catch it (porsager/postgres#1066, #1154, #1208; the agent guards against it too, see
    // agent/src/driver-guard.ts). The outage tests stop databases under the tests' own clients, so
    // that stray write is ignored here; every other unhandled error still fails the run.
    onUnhandledError(error) {
      const lostSocket =
        /\(reading '(write|end|setKeepAlive|removeListener|resume|pause)'\)/.test(error.message ?? "") &&
        /postgres[\\/]src[\\/]connection\.js/.test(error.stack ?? "");
      return lostSocket ? false : undefined;
    },
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: ["{common,proto,agent,control-plane,sdk}/src/**/*.test.ts"],
        },
      },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["{agent,control-plane,sdk}/test/**/*.test.ts", "test/**/*.test.ts"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
