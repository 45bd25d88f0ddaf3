/**
 * Compiles the two Dray processes to plain JavaScript, one bundled file each, so that a
 * container runs `node` on compiled code with no TypeScript loader and no workspace.
 *
 * Layout of `<out>` (each package's folder is what its image copies to `/app`):
 *
 *   control-plane/dist/bin/dray-control-plane.mjs   the bundle
 *   control-plane/dist/bin/assets/                   the web UI's script and stylesheet
 *   control-plane/drizzle/                           the store's migrations
 *   control-plane/node_modules/@electric-sql/pglite  the embedded store (only without DRAY_DATABASE_URL)
 *   agent/dist/bin/dray-agent.mjs                    the bundle
 *   sdk/dist/dray.mjs                                the `dray` CLI (run by sdk/bin/dray.js when fresh)
 *
 * The control plane finds its migrations and UI assets relative to its own module
 * (`new URL("../../drizzle", import.meta.url)`, `join(import.meta.dirname, "assets")`). Those
 * expressions survive bundling verbatim, so this script reads them back from the bundle and
 * puts the files where they point; a change to either expression fails the build here instead
 * of the process at run time.
 *
 * PGlite stays outside the bundle: it loads its WebAssembly and data files relative to its own
 * module, and has no dependencies, so its package folder is copied as it is.
 *
 * @example
 * pnpm build                      # into ./dist
 * tsx scripts/build-bundles.ts --out /tmp/dray-dist
 */
import { cp, mkdir, readFile, realpath, rm, stat, utimes } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const root = fileURLToPath(new URL("..", import.meta.url));

/** Packages loaded at run time from node_modules instead of the bundle. */
const EXTERNAL = ["@electric-sql/pglite"];

/** Lets bundled CommonJS code call `require()` (Node builtins) and read its file name. */
const BANNER = [
  'import { createRequire as __drayCreateRequire } from "node:module";',
  'import { fileURLToPath as __drayFileURLToPath } from "node:url";',
  "const require = __drayCreateRequire(import.meta.url);",
  "const __filename = __drayFileURLToPath(import.meta.url);",
  "const __dirname = import.meta.dirname;",
].join("\n");

/** One built process. */
export interface BuiltBundle {
  /** `control-plane` or `agent`. */
  name: string;
  /** Absolute path of the bundled entry point. */
  file: string;
  /** Size of the bundle in bytes. */
  bytes: number;
}

/** Options of {@link buildBundles}. */
export interface BuildBundlesOptions {
  /** Output folder; emptied first. */
  outDir: string;
  /** Minify the bundles. @default false (readable stack traces) */
  minify?: boolean;
}

/** Builds both bundles and their run-time files into `outDir`. */
export async function buildBundles(options: BuildBundlesOptions): Promise<BuiltBundle[]> {
  const outDir = resolve(options.outDir);
  await rm(outDir, { recursive: true, force: true });
  const controlPlane = await bundle({
    name: "control-plane",
    entry: join(root, "control-plane/src/main.ts"),
    file: join(outDir, "control-plane/dist/bin/dray-control-plane.mjs"),
    minify: options.minify ?? false,
  });
  await placeControlPlaneFiles(controlPlane.file, join(outDir, "control-plane"));
  const agent = await bundle({
    name: "agent",
    entry: join(root, "agent/src/main.ts"),
    file: join(outDir, "agent/dist/bin/dray-agent.mjs"),
    minify: options.minify ?? false,
  });
  const cli = await buildCliBundle(outDir, options.minify ?? false);
  return [controlPlane, agent, cli];
}

/**
 * The `dray` CLI as one file, `<outDir>/sdk/dist/dray.mjs`. `sdk/bin/dray.js` runs it (instead
 * of the TypeScript source through tsx) when it sits in the repository's `dist/` and is newer
 * than every file of `sdk/src`.
 */
export async function buildCliBundle(outDir: string, minify: boolean): Promise<BuiltBundle> {
  return bundle({
    name: "cli",
    entry: join(root, "sdk/src/cli/main.ts"),
    file: join(resolve(outDir), "sdk/dist/dray.mjs"),
    minify,
  });
}

async function bundle(spec: { name: string; entry: string; file: string; minify: boolean }) {
  // The bins run a bundle only when it is newer than its sources (common/bin/bundle-or-source.mjs,
  // sdk/bin/dray.js). Dating it at the start of the build makes a source edited while esbuild
  // ran count as newer, so that edit is not hidden.
  const started = new Date();
  await build({
    entryPoints: [spec.entry],
    outfile: spec.file,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    // Prefer the ESM build of dual packages, as Node itself would for an import.
    mainFields: ["module", "main"],
    conditions: ["import", "node"],
    external: EXTERNAL,
    banner: { js: BANNER },
    minify: spec.minify,
    legalComments: "linked",
    logLevel: "warning",
    absWorkingDir: root,
  });
  await utimes(spec.file, started, started);
  return { name: spec.name, file: spec.file, bytes: (await stat(spec.file)).size };
}

/**
 * Puts the migrations, the UI assets and PGlite where the bundled control plane looks for them,
 * reading the relative paths from the bundle itself.
 */
async function placeControlPlaneFiles(bundleFile: string, packageOut: string): Promise<void> {
  const text = await readFile(bundleFile, "utf8");
  const migrations = text.match(/new URL\("([^"]*drizzle)", import\.meta\.url\)/);
  if (!migrations?.[1]) {
    throw new Error(
      `${bundleFile}: the migrations folder expression (new URL("…drizzle", import.meta.url)) is gone; update scripts/build-bundles.ts`,
    );
  }
  if (!/join\(import\.meta\.dirname, "assets"\)/.test(text)) {
    throw new Error(
      `${bundleFile}: the UI assets expression (join(import.meta.dirname, "assets")) is gone; update scripts/build-bundles.ts`,
    );
  }
  const migrationsOut = fileURLToPath(new URL(migrations[1], pathToFileURL(bundleFile)));
  if (!migrationsOut.startsWith(`${packageOut}/`)) {
    throw new Error(`${bundleFile}: migrations would land outside ${packageOut} (${migrationsOut})`);
  }
  await cp(join(root, "control-plane/drizzle"), migrationsOut, { recursive: true });
  await cp(join(root, "control-plane/src/web/assets"), join(dirname(bundleFile), "assets"), {
    recursive: true,
  });
  for (const name of EXTERNAL) {
    // pnpm links each dependency into the package's own node_modules.
    const source = await realpath(join(root, "control-plane/node_modules", name));
    const target = join(packageOut, "node_modules", name);
    await mkdir(dirname(target), { recursive: true });
    await cp(source, target, {
      recursive: true,
      // Source maps are not needed to run it.
      filter: (source) => !source.endsWith(".map"),
    });
  }
}

function parseArgs(argv: string[]): BuildBundlesOptions {
  const options: BuildBundlesOptions = { outDir: join(root, "dist") };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") continue;
    if (arg === "--out" && argv[i + 1]) options.outDir = argv[++i] as string;
    else if (arg === "--minify") options.minify = true;
    else throw new Error(`unknown argument ${arg} (usage: build-bundles [--out DIR] [--minify])`);
  }
  return options;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const options = parseArgs(process.argv.slice(2));
  const built = await buildBundles(options);
  for (const b of built) {
    process.stdout.write(`${b.name}: ${b.file} (${(b.bytes / 1024 / 1024).toFixed(1)} MiB)\n`);
  }
}
