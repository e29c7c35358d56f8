/**
 * Man pages and shell completion (bash, zsh) generated from a commander
 * program's own definitions: its commands, arguments and options, with their
 * descriptions. What a command line accepts is written down once, in the
 * program; these are derived from it at package time.
 */
import type { Argument, Command, Option } from 'commander';

export interface ManSection {
  title: string;
  /** roff body lines (already escaped where needed). */
  body: string[];
}

export interface ManMeta {
  section: 1 | 8;
  version: string;
  /** One line, e.g. "Livegraft host agent". */
  summary: string;
  extra: ManSection[];
}

interface Node {
  path: string[];
  cmd: Command;
}

/** Every command below `root` (depth first, in definition order), the root first. */
export function walk(root: Command): Node[] {
  const out: Node[] = [];
  const visit = (cmd: Command, path: string[]): void => {
    out.push({ path, cmd });
    for (const sub of cmd.commands) visit(sub, [...path, sub.name()]);
  };
  visit(root, []);
  return out;
}

const visibleOptions = (cmd: Command): Option[] => cmd.options.filter((o) => !o.hidden);
const takesValue = (o: Option): boolean => o.required || o.optional;
const optionNames = (o: Option): string[] => [o.short, o.long].filter((x): x is string => x !== undefined);
const argText = (a: Argument): string => {
  const n = `${a.name()}${a.variadic ? '...' : ''}`;
  return a.required ? `<${n}>` : `[${n}]`;
};

/** roff text: backslashes, leading control characters, and dashes as minus signs. */
export function roff(text: string): string {
  return text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .replace(/^([.'])/gm, '\\&$1');
}

export function manPage(program: Command, meta: ManMeta): string {
  const name = program.name();
  const upper = name.toUpperCase();
  const lines: string[] = [
    `.TH ${upper} ${meta.section} "" "${name} ${meta.version}" "${meta.section === 8 ? 'System Administration' : 'User Commands'}"`,
    '.SH NAME',
    `${roff(name)} \\- ${roff(meta.summary)}`,
    '.SH SYNOPSIS',
    `.B ${roff(name)}`,
    '[\\fIoptions\\fR] \\fIcommand\\fR [\\fIcommand options\\fR]',
    '.SH DESCRIPTION',
    roff(program.description()),
    '.SH OPTIONS',
  ];
  const optionLines = (cmd: Command): string[] =>
    visibleOptions(cmd).flatMap((o) => ['.TP', `.B ${roff(o.flags)}`, roff(o.description || '')]);
  lines.push(...optionLines(program), '.TP', '.B \\-h, \\-\\-help', 'display help for the command');
  lines.push('.SH COMMANDS');
  for (const { path, cmd } of walk(program).slice(1)) {
    const args = cmd.registeredArguments.map(argText).join(' ');
    lines.push('.SS', `.B ${roff([name, ...path].join(' '))}${args ? ` ${roff(args)}` : ''}`);
    lines.push('.PP', roff(cmd.description()));
    const opts = optionLines(cmd);
    if (opts.length > 0) lines.push('.RS', ...opts, '.RE');
  }
  for (const s of meta.extra) lines.push(`.SH ${s.title}`, ...s.body);
  return lines.join('\n') + '\n';
}

const shellFn = (name: string): string => `_${name.replace(/[^A-Za-z0-9]/g, '_')}`;
const bashWord = (s: string): string => s.replace(/[^A-Za-z0-9_.:=/-]/g, '');

/**
 * A bash completion script: completes subcommands and options at each level
 * of the command tree, and file names after an option that takes a value.
 */
export function bashCompletion(program: Command): string {
  const name = program.name();
  const fn = shellFn(name);
  const nodes = walk(program);
  const caseOf = (pick: (cmd: Command) => string[]): string =>
    nodes.map(({ path, cmd }) => `    '${path.join(' ')}') echo '${pick(cmd).map(bashWord).join(' ')}' ;;`).join('\n');
  return `# bash completion for ${name} (generated from its command definitions)
${fn}_subs() {
  case "$1" in
${caseOf((c) => c.commands.map((s) => s.name()))}
  esac
}
${fn}_opts() {
  case "$1" in
${caseOf((c) => [...visibleOptions(c).flatMap(optionNames), '--help'])}
  esac
}
${fn}_valued() {
  case "$1" in
${caseOf((c) => visibleOptions(c).filter(takesValue).flatMap(optionNames))}
  esac
}
${fn}() {
  local cur prev path w i
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev=""
  [ "$COMP_CWORD" -gt 0 ] && prev="\${COMP_WORDS[COMP_CWORD-1]}"
  path=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    case "$w" in -*) continue ;; esac
    case " $(${fn}_subs "$path") " in
      *" $w "*) path="\${path:+$path }$w" ;;
    esac
  done
  case " $(${fn}_valued "$path") " in
    *" $prev "*)
      if [ -n "$prev" ]; then
        COMPREPLY=($(compgen -f -- "$cur"))
        return 0
      fi
      ;;
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(${fn}_opts "$path")" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$(${fn}_subs "$path")" -- "$cur"))
    [ \${#COMPREPLY[@]} -eq 0 ] && COMPREPLY=($(compgen -f -- "$cur"))
  fi
  return 0
}
complete -o filenames -F ${fn} ${name}
`;
}

/** zsh quoting for one `_describe` entry: 'word:description'. */
const zshEntry = (word: string, description: string): string =>
  `'${bashWord(word)}:${description.replace(/'/g, "'\\''").replace(/:/g, '\\:').replace(/\s+/g, ' ').trim()}'`;

/** A zsh completion function (#compdef), the same tree as the bash one, with descriptions. */
export function zshCompletion(program: Command): string {
  const name = program.name();
  const fn = shellFn(name);
  const nodes = walk(program);
  const cases = nodes
    .map(({ path, cmd }) => {
      const subs = cmd.commands.map((s) => zshEntry(s.name(), s.description()));
      const opts = [
        ...visibleOptions(cmd).flatMap((o) => optionNames(o).map((n) => zshEntry(n, o.description || ''))),
        zshEntry('--help', 'display help for the command'),
      ];
      const valued = visibleOptions(cmd).filter(takesValue).flatMap(optionNames);
      return [
        `    '${path.join(' ')}')`,
        `      subs=(${subs.join(' ')})`,
        `      opts=(${opts.join(' ')})`,
        `      valued=(${valued.map(bashWord).join(' ')})`,
        '      ;;',
      ].join('\n');
    })
    .join('\n');
  return `#compdef ${name}
# zsh completion for ${name} (generated from its command definitions)
${fn}_tree() {
  case "$1" in
${cases}
  esac
}
${fn}() {
  local p="" w i
  local -a subs opts valued
  for (( i = 2; i < CURRENT; i++ )); do
    w=\${words[i]}
    [[ $w == -* ]] && continue
    ${fn}_tree "$p"
    if (( \${subs[(I)\${w}:*]} )); then p="\${p:+$p }$w"; fi
  done
  ${fn}_tree "$p"
  if (( CURRENT > 2 )) && (( \${valued[(Ie)\${words[CURRENT-1]}]} )); then
    _files
  elif [[ \${words[CURRENT]} == -* ]]; then
    _describe -t options 'option' opts
  elif (( \${#subs} )); then
    _describe -t commands 'command' subs
  else
    _files
  fi
}
${fn} "$@"
`;
}
