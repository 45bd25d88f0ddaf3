/** Types of common/bin/bundle-or-source.mjs (plain JavaScript, run before any TypeScript loader). */

/** The Dray programs whose bins run a bundle or their source (`dray` is the CLI). */
export type DrayProcessName = "dray-control-plane" | "dray-agent" | "dray";

/** The repository root. */
export declare const repositoryRoot: string;

/** Bundle path, TypeScript entry and sources of each process, relative to the bundle folder or repository. */
export declare const PROCESSES: Record<
  DrayProcessName,
  { bundle: string; source: string; sources: string[] }
>;

/** Newest modification time (ms) of a file or a folder and everything under it; 0 when missing. */
export declare function newestMtime(path: string): number;

/** The pure freshness rule. */
export declare function chooseEntry(inputs: {
  bundleMtimeMs: number;
  sourcesMtimeMs: number;
  fromSource: boolean;
}): "bundle" | "source";

/** Which file a process would run (absolute path), with DRAY_FROM_SOURCE and DRAY_BUNDLE_DIR read from `env`. */
export declare function resolveEntry(
  name: DrayProcessName | string,
  env?: Record<string, string | undefined>,
): { kind: "bundle" | "source"; file: string };

/** Runs a process: its fresh bundle, else its TypeScript source through tsx. */
export declare function runProcess(name: DrayProcessName): Promise<void>;
