/** Command-line helpers shared by the `peerfetch` commands (src/cli) and `peerfetch tracker` (src/tracker). */

/** The option table of node:util parseArgs, as far as these helpers need it. */
export type OptionTypes = Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>;

/**
 * `--rate -5` as `--rate=-5`: node:util parseArgs refuses a value that starts with a dash as
 * ambiguous, before the option's own check could say which values it accepts. Only values that
 * look like negative numbers are joined, so a forgotten value before another flag stays an error.
 *
 * @example
 * joinNegativeValues(['--rate', '-5'], { rate: { type: 'string' } }) // ['--rate=-5']
 */
export function joinNegativeValues(argv: string[], options: OptionTypes): string[] {
  const joined: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    if (arg.startsWith('--') && !arg.includes('=') && options[arg.slice(2)]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      joined.push(`${arg}=${next}`);
      i++;
    } else {
      joined.push(arg);
    }
  }
  return joined;
}

/** The environment variable of a flag: `--max-connections` → `PEERFETCH_MAX_CONNECTIONS`. */
export function envNameOf(flag: string): string {
  return `PEERFETCH_${flag.toUpperCase().replace(/-/g, '_')}`;
}

/**
 * Turns `PEERFETCH_*` environment variables into flags for the options not given on the command
 * line (flags win, twelve-factor style): one `--flag=value` per variable, a comma-separated list
 * for repeatable options, `1`/`true`/`yes` and `0`/`false`/`no` for switches. Returns the flags and
 * which flag came from which variable (for error messages).
 *
 * @example
 * flagsFromEnv({ PEERFETCH_PORT: '9000' }, ['--host', '::'], { port: { type: 'string' }, host: { type: 'string' } })
 * // { args: ['--port=9000'], sources: { port: 'PEERFETCH_PORT' } }
 */
export function flagsFromEnv(
  env: Record<string, string | undefined>,
  argv: string[],
  options: OptionTypes,
): { args: string[]; sources: Record<string, string> } {
  const given = new Set(argv.filter((arg) => arg.startsWith('--')).map((arg) => arg.slice(2).split('=')[0]!.replace(/^no-/, '')));
  const args: string[] = [];
  const sources: Record<string, string> = {};
  for (const [flag, spec] of Object.entries(options)) {
    if (flag === 'help' || given.has(flag)) continue;
    const name = envNameOf(flag);
    const value = env[name];
    if (value === undefined || value === '') continue;
    sources[flag] = name;
    if (spec.type === 'boolean') {
      if (/^(1|true|yes)$/i.test(value)) args.push(`--${flag}`);
      else if (!/^(0|false|no)$/i.test(value)) args.push(`--${flag}=${value}`); // parseArgs then names it as invalid
    } else if (spec.multiple) {
      for (const item of value.split(',').map((part) => part.trim()).filter(Boolean)) args.push(`--${flag}=${item}`);
    } else {
      args.push(`--${flag}=${value}`);
    }
  }
  return { args, sources };
}
