/**
 * Values per CPU-second of every transformer Dray ships, in this process, on
 * generated values of the shape each one is meant for: the figures the
 * `--transform` mode prints beside the copy (benchmarks report numbers; the
 * transformers' tests assert behaviour only).
 */
import { randomBytes } from "node:crypto";
import { compileTransformer } from "../../agent/src/transform/index.js";
import { perCpuSecond } from "./per-cpu-second.js";

/** One measured transformer. */
export interface CatalogueSpeed {
  transformer: string;
  options: Record<string, unknown>;
  columnType: string;
  perCpuSecond: number;
}

const emails = (n: number) => Array.from({ length: n }, (_, i) => `person.${i}.lovelace@example.com`);
const CASES: readonly [string, Record<string, unknown>, string, (n: number) => string[]][] = [
  ["hash", { length: 16 }, "text", emails],
  ["hash", { encoding: "base32" }, "text", emails],
  ["mask", { keepLast: 4 }, "text", emails],
  ["char_scramble", {}, "text", emails],
  ["choice", { values: ["a", "b", "c"] }, "text", emails],
  [
    "regexp_replace",
    { pattern: "\\d{3}$", replacement: "000" },
    "text",
    (n) => Array.from({ length: n }, (_, i) => `+44 20 7946 ${String(i % 10_000).padStart(4, "0")}`),
  ],
  [
    "noise_date",
    { days: 30 },
    "date",
    (n) =>
      Array.from({ length: n }, (_, i) =>
        new Date(Date.UTC(1990, 0, 1 + (i % 9000))).toISOString().slice(0, 10),
      ),
  ],
  [
    "noise_number",
    { percent: 10 },
    "numeric(12,2)",
    (n) => Array.from({ length: n }, (_, i) => `${i * 37}.25`),
  ],
  ...[
    "first_name",
    "last_name",
    "full_name",
    "email",
    "phone",
    "street_address",
    "city",
    "postcode",
    "country",
    "company",
  ].map((name): [string, Record<string, unknown>, string, (n: number) => string[]] => [
    name,
    {},
    "text",
    emails,
  ]),
  ["anonymize", {}, "text", (n) => Array.from({ length: n }, (_, i) => `Order-${10_000 + i}`)],
  ["ff1", {}, "text", (n) => Array.from({ length: n }, (_, i) => String(4_111_111_111_111_111 + i))],
  ["permute", {}, "integer", (n) => Array.from({ length: n }, (_, i) => String(i * 7919))],
  ["permute", {}, "uuid", (n) => Array.from({ length: n }, () => crypto.randomUUID())],
];

/** Measures every case with one random key: `calls` calls over 1,000 values each. */
export function catalogueSpeeds(calls = 50_000): CatalogueSpeed[] {
  const key = randomBytes(32);
  return CASES.map(([transformer, options, columnType, values]) => ({
    transformer,
    options,
    columnType,
    perCpuSecond: perCpuSecond(
      compileTransformer(transformer, options, key, columnType),
      values(1000),
      calls,
    ),
  }));
}
