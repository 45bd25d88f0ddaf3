import type { Command } from "commander";

/** One command of the tree, as the completion scripts need it. */
export interface CompletionNode {
  /** Words from the root, e.g. ["pipeline", "delete"]; [] for the root. */
  path: string[];
  description: string;
  /** Its subcommands' names. */
  subcommands: string[];
  /** Its long flags (and the global ones), e.g. "--yes". */
  flags: { flag: string; description: string }[];
  /** Fixed choices of its first argument (e.g. the shells of `completion`). */
  choices: string[];
}

/** Flattens a commander tree into one node per command, root first. */
export function completionTree(program: Command): CompletionNode[] {
  const globals = program.options
    .filter((o) => o.long && !o.hidden)
    .map((o) => ({ flag: o.long as string, description: o.description }));
  const nodes: CompletionNode[] = [];
  const walk = (command: Command, path: string[]) => {
    const own = command === program ? [] : command.options;
    nodes.push({
      path,
      description: command.description(),
      subcommands: command.commands.map((c) => c.name()),
      flags: [
        ...own
          .filter((o) => o.long && !o.hidden)
          .map((o) => ({ flag: o.long as string, description: o.description })),
        ...globals,
        { flag: "--help", description: "show help for a command" },
      ],
      choices: command.registeredArguments[0]?.argChoices ?? [],
    });
    for (const sub of command.commands) walk(sub, [...path, sub.name()]);
  };
  walk(program, []);
  return nodes;
}

/** The completion script of `dray` for `shell`. */
export function completionScript(shell: "bash" | "zsh" | "fish", program: Command): string {
  const nodes = completionTree(program);
  if (shell === "bash") return bashScript(nodes);
  if (shell === "zsh") return zshScript(nodes);
  return fishScript(nodes);
}

/** The case pattern of a path: " pipeline delete". */
const key = (path: string[]) => ` ${path.join(" ")}`.trimEnd();

/** Quotes for a POSIX shell's single quotes. */
const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function pathWalk(nodes: CompletionNode[], wordsVar: string, from: number, to: string): string {
  const known = nodes.filter((n) => n.path.length > 0);
  return [
    `  local path="" w i`,
    `  for ((i = ${from}; i < ${to}; i++)); do`,
    `    w="\${${wordsVar}[i]}"`,
    `    case "$path $w" in`,
    `      ${known.map((n) => sq(key(n.path))).join("|")}) path="$path $w" ;;`,
    "    esac",
    "  done",
  ].join("\n");
}

function bashScript(nodes: CompletionNode[]): string {
  const arms = nodes.map((n) => {
    const words = [...n.subcommands, ...n.choices, ...n.flags.map((f) => f.flag)].join(" ");
    return `    ${sq(key(n.path))}) words=${sq(words)} ;;`;
  });
  return `# dray completion for bash. Load it with: source <(dray completion bash)
# or install it: dray completion bash > /etc/bash_completion.d/dray
_dray() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" words=""
${pathWalk(nodes, "COMP_WORDS", 1, "COMP_CWORD")}
  case "$path" in
${arms.join("\n")}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _dray dray
`;
}

function zshScript(nodes: CompletionNode[]): string {
  const item = (name: string, description: string) =>
    sq(`${name.replace(/:/g, "\\:")}:${description.replace(/\n/g, " ")}`);
  const arms = nodes.map((n) => {
    const children = new Map(nodes.map((c) => [c.path.join(" "), c.description]));
    const items = [
      ...n.subcommands.map((s) => item(s, children.get([...n.path, s].join(" ")) ?? "")),
      ...n.choices.map((c) => item(c, "")),
      ...n.flags.map((f) => item(f.flag, f.description)),
    ];
    return `    ${sq(key(n.path))}) items=(${items.join(" ")}) ;;`;
  });
  return `#compdef dray
# dray completion for zsh. Install it: dray completion zsh > "\${fpath[1]}/_dray"
# or load it in this shell (after compinit): source <(dray completion zsh)
_dray() {
  local -a items
${pathWalk(nodes, "words", 2, "CURRENT")}
  case "$path" in
${arms.join("\n")}
  esac
  _describe -t commands dray items
}
if [[ "\${zsh_eval_context[-1]}" == loadautofunc ]]; then
  _dray "$@"
else
  compdef _dray dray
fi
`;
}

function fishScript(nodes: CompletionNode[]): string {
  const lines = [
    "# dray completion for fish. Install it: dray completion fish > ~/.config/fish/completions/dray.fish",
    "complete -c dray -f",
  ];
  const fq = (s: string) => `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
  for (const n of nodes) {
    // The condition under which this node is the command being completed.
    const condition =
      n.path.length === 0
        ? "__fish_use_subcommand"
        : [
            ...n.path.map((w) => `__fish_seen_subcommand_from ${w}`),
            ...(n.subcommands.length > 0
              ? [`not __fish_seen_subcommand_from ${n.subcommands.join(" ")}`]
              : []),
          ].join("; and ");
    for (const sub of n.subcommands) {
      const child = nodes.find((c) => c.path.join(" ") === [...n.path, sub].join(" "));
      lines.push(`complete -c dray -n ${fq(condition)} -a ${sub} -d ${fq(child?.description ?? "")}`);
    }
    for (const choice of n.choices) lines.push(`complete -c dray -n ${fq(condition)} -a ${choice}`);
    for (const f of n.flags) {
      lines.push(
        `complete -c dray -n ${fq(condition)} -l ${f.flag.replace(/^--/, "")} -d ${fq(f.description)}`,
      );
    }
  }
  return `${lines.join("\n")}\n`;
}
