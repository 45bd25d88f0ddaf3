import { stripVTControlCharacters } from "node:util";
import { createLogUpdate } from "log-update";
import type { Execution } from "../client.js";
import type { ExecutionEvent } from "../event-stream.js";
import type { Output } from "./output.js";
import { type EntityProgress, progressFrame } from "./progress-view.js";

/** What `dray run` and `dray watch` show while they wait. */
export interface LiveView {
  /** Shows one event of the execution. */
  event(event: ExecutionEvent): void;
  /** Draws the final frame from the finished execution's own counts and stops redrawing. */
  finish(execution: Execution): void;
  /** Stops redrawing, leaving the last frame on the screen. */
  stop(): void;
}

/** The error line of an `execution.error` event. */
function errorLine(d: ExecutionEvent["data"]): string {
  const key = Array.isArray(d.recordKey) ? `[${(d.recordKey as string[]).join(",")}] ` : "";
  return `${d.entity ?? ""} ${key}${String(d.message ?? "")}`.trim();
}

/**
 * Live bars on a terminal (redrawn through log-update, fitted to the width and redrawn on
 * resize), plain lines otherwise: stage changes, errors and each entity once it is done.
 */
export function createLiveView(out: Output): LiveView {
  return out.tty ? createBarsView(out) : createPlainView(out);
}

function createPlainView(out: Output): LiveView {
  const done = new Set<string>();
  return {
    event(event) {
      const d = event.data;
      if (event.type === "execution.stage") out.line(`${d.processName} ${d.state}: ${d.description}`);
      if (event.type === "execution.error") out.line(`error: ${errorLine(d)}`);
      if (event.type === "execution.progress" && Array.isArray(d.entities)) {
        for (const e of d.entities as EntityProgress[]) {
          if (done.has(e.entity) || e.total <= 0 || e.processed < e.total) continue;
          done.add(e.entity);
          out.line(`${e.entity}: ${e.processed}/${e.total} records`);
        }
      }
    },
    finish() {},
    stop() {},
  };
}

function createBarsView(out: Output): LiveView {
  const stream = out.stdout as NodeJS.WriteStream;
  const render = createLogUpdate(stream);
  const errors: string[] = [];
  let state: { entities: EntityProgress[]; rate: number; eta: number | null } | null = null;
  let stopped = false;
  let lastLines: string[] = [];
  let lastColumns = stream.columns ?? 80;

  const draw = () => {
    if (!state || stopped) return;
    const columns = stream.columns ?? 80;
    const frame = progressFrame(state.entities, {
      rate: state.rate,
      eta: state.eta,
      columns,
      colours: out.color,
    });
    const tail = errors.slice(-3).map((e) => out.color.red(`  ${e}`.slice(0, columns - 1)));
    lastLines = [...frame, ...tail];
    lastColumns = columns;
    render(lastLines.join("\n"));
  };

  // A narrower terminal (tmux, most emulators) re-wraps the lines already drawn, which
  // log-update cannot know: erase the rows they now take, then draw afresh at the new width.
  const onResize = () => {
    const columns = stream.columns ?? 80;
    if (columns < lastColumns && lastLines.length > 0) {
      const rows = lastLines.reduce(
        (n, line) => n + Math.max(1, Math.ceil(stripVTControlCharacters(line).length / columns)),
        0,
      );
      stream.write(`\u001b[${rows}F\u001b[0J`);
      render.done();
    }
    draw();
  };
  stream.on("resize", onResize);

  const stop = () => {
    if (stopped) return;
    stopped = true;
    stream.off("resize", onResize);
    render.done();
  };

  return {
    event(event) {
      const d = event.data;
      if (event.type === "execution.error") errors.push(errorLine(d));
      if (event.type === "execution.progress" && Array.isArray(d.entities)) {
        state = {
          entities: d.entities as EntityProgress[],
          rate: Number(d.throughput ?? 0),
          eta: (d.etaSeconds as number | null) ?? null,
        };
      } else if (event.type !== "execution.error") return;
      draw();
    },
    finish(execution) {
      // The last progress event carries totals only: the final frame comes from the execution.
      if (execution.entities.length > 0) {
        state = {
          entities: execution.entities.map((e) => ({
            entity: e.entity,
            total: e.total,
            processed: e.processed,
            skipped: e.skipped,
            failed: e.failed,
            status: e.status,
          })),
          rate: execution.throughput,
          eta: null,
        };
        draw();
      }
      stop();
    },
    stop,
  };
}
