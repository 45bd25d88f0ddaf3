import { createLogUpdate } from "log-update";
import { formatBytes } from "./files-format.js";
import type { Output } from "./output.js";
import { type EntityProgress, progressFrame } from "./progress-view.js";

/** What `dray upload` shows while it sends its files, one after the other. */
export interface UploadView {
  /** `sentBytes` of file number `index` have been read into the request. */
  progress(index: number, sentBytes: number): void;
  /** File number `index` is done (`ok`) or was refused. */
  finish(index: number, ok: boolean): void;
  /** Stops redrawing, leaving the last frame on the screen. */
  stop(): void;
}

/** The file states, worded for uploads (at most 7 characters, like the run bars). */
const UPLOAD_WORDS = { pending: "waiting", in_progress: "sending", completed: "sent", failed: "refused" };

/**
 * The bars of an upload: one per file (sent bytes of its size, its state), and the rate
 * and ETA of the file being sent. Pure, for tests.
 */
export function uploadFrame(
  files: readonly EntityProgress[],
  options: {
    rate: number;
    eta: number | null;
    columns: number;
    colours?: Parameters<typeof progressFrame>[1]["colours"];
  },
): string[] {
  return progressFrame(files, {
    ...options,
    unit: "",
    formatCount: formatBytes,
    stateWords: UPLOAD_WORDS,
  });
}

/**
 * A bar per file on a terminal, redrawn through log-update (at most every 100 ms);
 * nothing off a terminal or with `--json` (the result lines say it all).
 */
export function createUploadView(
  out: Output,
  files: readonly { name: string; size: number }[],
  now: () => number = Date.now,
): UploadView {
  if (!out.tty) return { progress() {}, finish() {}, stop() {} };
  const stream = out.stdout as NodeJS.WriteStream;
  const render = createLogUpdate(stream);
  const state: EntityProgress[] = files.map((f) => ({
    entity: f.name,
    total: f.size,
    processed: 0,
    status: "pending",
  }));
  let started = now();
  let current = -1;
  let lastDraw = 0;
  let stopped = false;

  const draw = (force: boolean) => {
    if (stopped) return;
    const at = now();
    if (!force && at - lastDraw < 100) return;
    lastDraw = at;
    const file = state[current];
    const seconds = Math.max(0.001, (at - started) / 1000);
    const rate = file ? file.processed / seconds : 0;
    const eta = file && rate > 0 ? Math.ceil((file.total - file.processed) / rate) : null;
    render(uploadFrame(state, { rate, eta, columns: stream.columns ?? 80, colours: out.color }).join("\n"));
  };

  return {
    progress(index, sentBytes) {
      const file = state[index];
      if (!file) return;
      if (index !== current) {
        current = index;
        started = now();
      }
      file.processed = sentBytes;
      file.status = "in_progress";
      draw(false);
    },
    finish(index, ok) {
      const file = state[index];
      if (!file) return;
      file.status = ok ? "completed" : "failed";
      if (ok) file.processed = Math.max(file.processed, file.total);
      draw(true);
    },
    stop() {
      if (stopped) return;
      draw(true);
      stopped = true;
      render.done();
    },
  };
}
