/** @jsxImportSource hono/jsx */
/**
 * The Environments page: each environment's health (Healthy / Unhealthy /
 * Unknown) with the reason, last heartbeat, agent version, and a Test
 * Connection button that shows the measured latency; adding an environment
 * shows its enrollment token once, with the exact command to start its agent.
 */
import type { FC } from "hono/jsx";
import type { EnvironmentView } from "../../environments/environment-view.js";
import { type AssetPaths, Badge, Layout, Notice, type Viewer, when } from "./layout.js";

/** A just-created environment's one-time enrollment token and agent command. */
export interface NewEnvironment {
  name: string;
  token: string;
  command: string;
}

/** The result of a Test Connection, shown once on the page. */
export interface TestOutcome {
  environmentId: string;
  ok: boolean;
  message: string;
}

/**
 * What an environment's card says of its health, agent and last test: the part
 * the page's script swaps in every few seconds (GET /environments/health), so
 * an agent that dies turns its card Unhealthy without a reload.
 */
export const EnvironmentHealth: FC<{ env: EnvironmentView }> = ({ env }) => (
  <div data-swap-id={`health-${env.id}`}>
    <div class="row">
      <span>Health</span>
      <Badge status={env.health} />
    </div>
    {env.healthReason ? <div class="muted">{env.healthReason}</div> : null}
    <div class="muted">
      {env.platform}
      {env.application ? ` · ${env.application}` : ""}
    </div>
    <div class="muted">
      Agent {env.agent.connected ? "connected" : "not connected"}
      {env.agent.version ? `, version ${env.agent.version}` : ""} · last heartbeat {when(env.lastHeartbeatAt)}
    </div>
    <div class="muted">
      Last test:{" "}
      {env.lastTestLatencyMs === null ? "never" : `${env.lastTestLatencyMs} ms at ${when(env.lastTestAt)}`}
    </div>
  </div>
);

/** The health parts of every card, for the script's refresh. */
export const EnvironmentsHealth: FC<{ environments: EnvironmentView[] }> = ({ environments }) => (
  <>
    {environments.map((env) => (
      <EnvironmentHealth env={env} />
    ))}
  </>
);

/** The whole page. */
export const EnvironmentsPage: FC<{
  environments: EnvironmentView[];
  viewer: Viewer;
  assets: AssetPaths;
  canOperate: boolean;
  created?: NewEnvironment | undefined;
  tested?: TestOutcome | undefined;
  error?: string | undefined;
}> = ({ environments, viewer, assets, canOperate, created, tested, error }) => (
  <Layout title="Environments" assets={assets} viewer={viewer} section="environments">
    <h1>Environments</h1>
    {error ? <Notice kind="error">{error}</Notice> : null}
    {created ? (
      <Notice>
        <p>
          Environment <strong>{created.name}</strong> was created. Its enrollment token is shown this once:
          start its agent next to the database with
        </p>
        <pre>
          <code>{created.command}</code>
        </pre>
      </Notice>
    ) : null}
    {environments.length === 0 ? <p class="muted">No environments yet.</p> : null}
    <div class="cards" data-poll="/environments/health" data-poll-ms="3000">
      {environments.map((env) => {
        const outcome = tested?.environmentId === env.id ? tested : undefined;
        return (
          <article class="card" aria-labelledby={`env-${env.id}`} id={`environment-${env.id}`}>
            <div class="row">
              <h2 id={`env-${env.id}`}>{env.name}</h2>
            </div>
            <EnvironmentHealth env={env} />
            {outcome ? (
              <Notice kind={outcome.ok ? "info" : "error"}>
                <span data-test-result>{outcome.message}</span>
              </Notice>
            ) : null}
            {canOperate ? (
              <form method="post" action={`/environments/${env.id}/test`}>
                <input type="hidden" name="_csrf" value={viewer.csrfToken} />
                <button type="submit" class="secondary">
                  Test Connection
                </button>
              </form>
            ) : null}
          </article>
        );
      })}
    </div>
    {canOperate ? (
      <section aria-labelledby="add-title">
        <h2 id="add-title">Add an environment</h2>
        <form method="post" action="/environments" class="row">
          <input type="hidden" name="_csrf" value={viewer.csrfToken} />
          <label>
            Name
            <input name="name" required maxlength={100} />
          </label>
          <input type="hidden" name="platform" value="postgres" />
          <button type="submit">Add environment</button>
        </form>
      </section>
    ) : null}
  </Layout>
);
