import type { DrayClient } from "../client.js";
import type { Output } from "./output.js";

/** What every command receives. */
export interface CommandContext {
  client: DrayClient;
  out: Output;
  /** Parsed `--flag value` options. */
  flags: Record<string, string | boolean | undefined> & {
    search?: string;
    application?: string;
    url?: string;
    status?: string;
    from?: string;
    to?: string;
    page?: string;
    limit?: string;
    reason?: string;
  };
  env: NodeJS.ProcessEnv;
}
