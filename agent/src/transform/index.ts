/**
 * The source agent's transformers, wired: importing this module registers
 * every implementation with the registry, and {@link compileTransformer}
 * builds a value function for a key and a column type (the connector's
 * `compileTransform`).
 */
import "./simple.js";
import "./regexp.js";
import "./noise.js";
import "./fakes-register.js";
import { ff1Factory, permuteFactory, validateFf1Options } from "./keyed.js";
import { createPrf, type Prf } from "./prf.js";
import { compileTransform, registerTransformer, type ValueTransform } from "./registry.js";

/** The key behind each PRF this module made: the keyed transformers (FF1, permutations) need the key itself. */
const keyOfPrf = new WeakMap<Prf, Uint8Array>();
/** One PRF per key (the agent has one key). */
const prfByKey = new Map<string, Prf>();

function prfFor(key: Uint8Array): Prf {
  const id = Buffer.from(key).toString("base64");
  let prf = prfByKey.get(id);
  if (!prf) {
    prf = createPrf(key);
    keyOfPrf.set(prf, key);
    prfByKey.set(id, prf);
  }
  return prf;
}

function keyOf(prf: Prf): Uint8Array {
  const key = keyOfPrf.get(prf);
  if (!key) throw new Error("a keyed transformer was compiled without its key");
  return key;
}

registerTransformer("ff1", {
  factory: (options, context) => ff1Factory({ ...options }, keyOf(context.prf), context.columnType),
  validate: (options) => {
    validateFf1Options({ ...options });
  },
});
registerTransformer("permute", (options, context) =>
  permuteFactory({ ...options }, keyOf(context.prf), context.columnType),
);

/**
 * The value function of transformer `name` with `options` for a column of
 * `columnType`, keyed by `key`.
 *
 * @throws DrayError `invalid_argument` for unknown transformers, bad options or a type it does not fit.
 */
export function compileTransformer(
  name: string,
  options: Record<string, unknown>,
  key: Uint8Array,
  columnType: string,
): ValueTransform {
  return compileTransform(name, options, prfFor(key), columnType);
}
