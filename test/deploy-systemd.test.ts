/**
 * Issue 15, item 9: the systemd units score 3.0 or better ("OK" or "SAFE") on
 * `systemd-analyze security --offline=true` (systemd 252 or newer), and keep the
 * settings Node cannot run without out of them.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const UNITS = ["dray-control-plane.service", "dray-agent.service"];
const unitPath = (unit: string) => fileURLToPath(new URL(`../deploy/systemd/${unit}`, import.meta.url));

/** The major version of systemd-analyze, or undefined when it is missing. */
function systemdVersion(): number | undefined {
  const result = spawnSync("systemd-analyze", ["--version"], { encoding: "utf8" });
  if (result.error || result.status !== 0) return undefined;
  const match = /^systemd (\d+)/.exec(result.stdout);
  return match ? Number(match[1]) : undefined;
}

/** The overall exposure `systemd-analyze security --offline=true` gives a unit file (0 safest, 10 worst). */
function exposureOf(output: string): number {
  const match = /Overall exposure level for \S+: (\d+(?:\.\d+)?)/.exec(output);
  if (!match) throw new Error(`no overall exposure level in:\n${output}`);
  return Number(match[1]);
}

const version = systemdVersion();
const offlineReason =
  version === undefined
    ? "systemd-analyze is not installed"
    : version < 252
      ? `systemd ${version} has no --offline security analysis (252 or newer)`
      : undefined;

describe("systemd units", () => {
  it("read the exposure figure from systemd-analyze's output", () => {
    expect(exposureOf("→ Overall exposure level for dray-agent.service: 1.3 OK 🙂")).toBe(1.3);
    expect(exposureOf("→ Overall exposure level for x.service: 9.2 UNSAFE 😨")).toBe(9.2);
    expect(() => exposureOf("nothing")).toThrow(/no overall exposure/);
  });

  it("never deny writable executable memory (V8's JIT needs it)", () => {
    for (const unit of UNITS) {
      expect(readFileSync(unitPath(unit), "utf8")).not.toMatch(/^MemoryDenyWriteExecute=/m);
    }
  });

  describe.skipIf(offlineReason !== undefined)(
    `systemd-analyze security --offline${offlineReason ? ` (skipped: ${offlineReason})` : ""}`,
    () => {
      for (const unit of UNITS) {
        it(`${unit} has an exposure of 3.0 or less`, () => {
          // The command exits non-zero when a unit is above its threshold; 3.0 makes it the assertion too.
          const output = execFileSync(
            "systemd-analyze",
            ["security", "--offline=true", "--threshold=30", "--no-pager", unitPath(unit)],
            { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
          );
          expect(exposureOf(output)).toBeLessThanOrEqual(3.0);
        });
      }
    },
  );
});
