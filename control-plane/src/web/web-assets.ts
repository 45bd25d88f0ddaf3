/**
 * The UI's own static assets (one script, one stylesheet, both in this
 * repository), served at content-hashed paths with immutable caching: a new
 * version has a new path, so a browser never runs a stale script.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Hono } from "hono";

/** One served asset. */
interface Asset {
  path: string;
  body: string;
  contentType: string;
}

const ASSET_DIR = join(import.meta.dirname, "assets");

function load(file: string, contentType: string): Asset {
  const body = readFileSync(join(ASSET_DIR, file), "utf8");
  const hash = createHash("sha256").update(body).digest("hex").slice(0, 12);
  const dot = file.lastIndexOf(".");
  return { path: `/ui/assets/${file.slice(0, dot)}.${hash}${file.slice(dot)}`, body, contentType };
}

/** The hashed paths of the UI's script and stylesheet, for the pages' <script> and <link>. */
export interface AssetPaths {
  script: string;
  stylesheet: string;
}

/** Loads the assets, mounts them on `app`, and returns their paths. */
export function mountAssets(app: Hono): AssetPaths {
  const script = load("app.js", "text/javascript; charset=utf-8");
  const stylesheet = load("app.css", "text/css; charset=utf-8");
  for (const asset of [script, stylesheet]) {
    app.get(asset.path, (c) =>
      c.body(asset.body, 200, {
        "content-type": asset.contentType,
        "cache-control": "public, max-age=31536000, immutable",
      }),
    );
  }
  return { script: script.path, stylesheet: stylesheet.path };
}
