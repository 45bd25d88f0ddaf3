/**
 * Security headers and checks of the web UI: a strict Content-Security-Policy
 * (same-origin only, no inline script or style, no eval), no framing, a
 * referrer only to this origin (with none, browsers send `Origin: null` on
 * form posts), and the anti-CSRF checks of every form POST (the session's token
 * in the form, and a same-origin Origin header when the browser sends one).
 */
import { timingSafeEqual } from "node:crypto";
import { DrayError } from "@dray/common";
import type { Context, MiddlewareHandler } from "hono";

/** The Content-Security-Policy of every page and asset. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/** Adds the UI's security headers to every response of the routes it wraps. */
export function securityHeaders(): MiddlewareHandler {
  return async (c, next) => {
    await next();
    c.header("Content-Security-Policy", CONTENT_SECURITY_POLICY);
    c.header("X-Content-Type-Options", "nosniff");
    c.header("X-Frame-Options", "DENY");
    c.header("Referrer-Policy", "same-origin");
    c.header("Cross-Origin-Opener-Policy", "same-origin");
    if (!c.res.headers.has("Cache-Control")) c.header("Cache-Control", "no-store");
  };
}

/** True when `a` and `b` are equal, in time independent of where they differ. */
function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Checks a form POST against CSRF: the form's `_csrf` must be the session's
 * token, and an Origin header, when present, must be this server's origin.
 * Throws `permission_denied` otherwise.
 */
export function assertSameOriginForm(c: Context, form: Record<string, unknown>, csrfToken: string): void {
  const origin = c.req.header("origin");
  if (origin !== undefined && origin !== new URL(c.req.url).origin)
    throw new DrayError(
      "permission_denied",
      "this form was sent from another site: reload the page and try again",
    );
  const sent = form._csrf;
  if (typeof sent !== "string" || !sameSecret(sent, csrfToken))
    throw new DrayError(
      "permission_denied",
      "this form has expired or did not come from this page: reload the page and try again",
    );
}
