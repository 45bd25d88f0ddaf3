/** How the CLI writes: human text (colour only on a terminal) or JSON for scripts. */
export interface Output {
  json: boolean;
  tty: boolean;
  /** Writes a line to stdout. */
  line(text?: string): void;
  /** Writes a value as JSON to stdout. */
  data(value: unknown): void;
  /** Writes a line to stderr. */
  error(text: string): void;
  color: {
    green(s: string): string;
    red(s: string): string;
    yellow(s: string): string;
    blue(s: string): string;
    grey(s: string): string;
    bold(s: string): string;
  };
  /** Raw stdout (for redrawing progress). */
  stdout: NodeJS.WritableStream;
}

const ansi = (code: number, on: boolean) => (s: string) => (on ? `\u001b[${code}m${s}\u001b[0m` : s);

/** Output for the current process: colour only when stdout is a TTY and NO_COLOR is unset. */
export function createOutput(options: {
  json: boolean;
  stdout?: NodeJS.WriteStream;
  stderr?: NodeJS.WriteStream;
  /** Where NO_COLOR is read. @default process.env */
  env?: NodeJS.ProcessEnv;
}): Output {
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  const tty = Boolean(stdout.isTTY) && !options.json;
  const colour = tty && !(options.env ?? process.env).NO_COLOR;
  return {
    json: options.json,
    tty,
    line: (text = "") => stdout.write(`${text}\n`),
    data: (value) => stdout.write(`${JSON.stringify(value, null, 2)}\n`),
    error: (text) => stderr.write(`${text}\n`),
    color: {
      green: ansi(32, colour),
      red: ansi(31, colour),
      yellow: ansi(33, colour),
      blue: ansi(34, colour),
      grey: ansi(90, colour),
      bold: ansi(1, colour),
    },
    stdout,
  };
}

/** Renders rows as aligned columns (the first row is the header). */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) {
    for (const [i, cell] of row.entries()) widths[i] = Math.max(widths[i] ?? 0, visible(cell).length);
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) =>
          i === row.length - 1 ? cell : cell + " ".repeat(widths[i]! - visible(cell).length),
        )
        .join("  "),
    )
    .join("\n");
}

function visible(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: strips ANSI colour codes to measure width
  return s.replace(/\u001b\[\d+m/g, "");
}

/** 1234567 → "1,234,567". */
export function count(n: number | null | undefined): string {
  return (n ?? 0).toLocaleString("en-US");
}

/** Milliseconds as "1.2s", "3m 05s", "1h 02m". */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "—";
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}
