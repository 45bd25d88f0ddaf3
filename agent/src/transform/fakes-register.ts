/**
 * Registers the fakes, anonymize, json_path and array_each with the
 * transformer registry. Importing this module registers them. `template`
 * needs the row, so it is not a value transformer: see wrappers.ts
 * (`templateFactory`).
 */
import { FAKE_FACTORIES, type FakeFactory, validateFakeOptions } from "./fakes.js";
import type { Prf } from "./prf.js";
import { compileTransform, registerTransformer } from "./registry.js";
import { elementType, parseJsonPath, WRAPPER_FACTORIES } from "./wrappers.js";

function register(
  name: string,
  factory: FakeFactory,
  innerType: (columnType: string) => string,
  validate: (options: Record<string, unknown>) => void,
): void {
  registerTransformer(name, {
    factory: (options, context) =>
      factory({ ...options }, context.prf, context.columnType, (inner, innerOptions) =>
        compileTransform(inner, innerOptions, context.prf as Prf, innerType(context.columnType)),
      ),
    validate: (options) => validate({ ...options }),
  });
}

for (const [name, factory] of Object.entries(FAKE_FACTORIES))
  register(
    name,
    factory,
    (t) => t,
    (options) => validateFakeOptions(name, options),
  );
// A json leaf is handed over as text; an array element has the array's element type.
register(
  "json_path",
  WRAPPER_FACTORIES.json_path!,
  () => "text",
  (options) => {
    if (typeof options.path === "string") parseJsonPath(options.path);
  },
);
register("array_each", WRAPPER_FACTORIES.array_each!, elementType, () => {});
