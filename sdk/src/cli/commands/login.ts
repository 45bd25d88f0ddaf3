import { createDrayClient } from "../../client.js";
import { DrayApiError } from "../../errors.js";
import { saveCliConfig } from "../cli-config.js";
import type { CommandContext } from "../command-context.js";
import { EXIT } from "../exit-codes.js";

/** `dray login --url URL --token TOKEN`: checks the token, then saves both (mode 0600). */
export async function login(ctx: Omit<CommandContext, "client">): Promise<number> {
  const { out, flags, env } = ctx;
  const url = String(flags.url);
  const token = String(flags.token);
  const client = createDrayClient({ baseUrl: url, token });
  await client.environments.list().catch((error: unknown) => {
    // A system-admin token cannot list environments but is still a valid login.
    if (!(error instanceof DrayApiError && error.status === 403)) throw error;
  });
  const path = await saveCliConfig(env, { url, token });
  if (out.json) out.data({ url, config: path });
  else out.line(`logged in to ${url} (saved in ${path})`);
  return EXIT.ok;
}
