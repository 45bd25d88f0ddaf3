/** @jsxImportSource hono/jsx */
/** The sign-in page: an API token exchanged for a session cookie. */
import type { FC } from "hono/jsx";
import { type AssetPaths, Layout, Notice } from "./layout.js";

/** The page, with an error from a failed attempt and the page to return to. */
export const SignInPage: FC<{ assets: AssetPaths; error?: string | undefined; next: string }> = ({
  assets,
  error,
  next,
}) => (
  <Layout title="Sign in" assets={assets}>
    <div class="signin">
      <h1>Sign in to Dray</h1>
      <p class="muted">
        Paste an API token of your organisation (<code>dray_…</code>). The browser keeps a session, never the
        token; signing out ends the session.
      </p>
      {error ? <Notice kind="error">{error}</Notice> : null}
      <form method="post" action="/sign-in">
        <input type="hidden" name="next" value={next} />
        <label>
          API token
          <input type="password" name="token" autocomplete="off" required />
        </label>
        <button type="submit">Sign in</button>
      </form>
    </div>
  </Layout>
);
