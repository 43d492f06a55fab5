/**
 * Flags, a YAML file (`--config`) and `RIPTIDE_*` environment variables, in that order of precedence
 * (flag beats variable beats file beats default). Every role declares its options with {@link OptionSpec};
 * the common ones are in {@link commonOptions}.
 *
 * @example
 *   const cfg = loadConfig(argv, [...commonOptions, { name: 'output', type: 'string', help: '…' }]);
 *   cfg.get('data-dir'); // from --data-dir, RIPTIDE_DATA_DIR, data-dir: in the YAML, or the default
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { EXIT_CODES_HELP, UsageError } from './command.ts';
import { redact } from './redact.ts';

export interface OptionSpec {
  name: string;
  type: 'string' | 'number' | 'boolean' | 'list';
  help: string;
  default?: string | number | boolean | string[];
  /** Single-letter alias, e.g. 'o' for --output. */
  short?: string;
  /** The environment variable, when not RIPTIDE_<NAME> (e.g. RIPTIDE_MARKETPLACE_TOKEN for `plugin --token`). */
  env?: string;
}

export type OptionValue = string | number | boolean | string[] | undefined;

/** `--config`: every command takes it, whether or not it lists it. */
export const configOption: OptionSpec = { name: 'config', type: 'string', help: 'YAML file with any of these options (keys as the flag names)' };

/**
 * The options several roles share. A role lists only those it uses; a config file shared by all
 * roles may still carry every one of them (a role ignores the ones it does not use).
 */
export const commonOptions: OptionSpec[] = [
  configOption,
  { name: 'data-dir', type: 'string', help: 'Where local state lives (store folder, spool, embedded ClickHouse)', default: '.riptide' },
  { name: 'port', type: 'number', help: 'HTTP port for /healthz, /metrics and the API', default: 8686 },
  { name: 'store', type: 'string', help: 'Object store: file:///path or s3://bucket/prefix (default: <data-dir>/store)' },
  { name: 's3-endpoint', type: 'string', help: 'S3-compatible endpoint URL (credentials and region from the AWS_* variables)' },
  { name: 'clickhouse-url', type: 'string', help: 'ClickHouse server URL; absent means embedded chDB under the data dir' },
];

export function envName(option: string): string {
  return 'RIPTIDE_' + option.toUpperCase().replace(/-/g, '_');
}

function envOf(spec: OptionSpec): string {
  return spec.env ?? envName(spec.name);
}

/** The specs with `--config` first, whether the role listed it or not. */
function withConfig(specs: OptionSpec[]): OptionSpec[] {
  return specs.some((s) => s.name === 'config') ? specs : [configOption, ...specs];
}

export class Config {
  constructor(
    private readonly values: Map<string, OptionValue>,
    readonly positionals: string[],
    /** The options given as flags on the command line (not from a variable or the file). */
    readonly flagsGiven: ReadonlySet<string> = new Set(),
  ) {}
  get(name: string): OptionValue {
    return this.values.get(name);
  }
  string(name: string): string | undefined {
    const v = this.values.get(name);
    return v === undefined ? undefined : String(v);
  }
  number(name: string): number | undefined {
    const v = this.values.get(name);
    return v === undefined ? undefined : Number(v);
  }
  bool(name: string): boolean {
    return this.values.get(name) === true;
  }
  list(name: string): string[] {
    const v = this.values.get(name);
    if (v === undefined) return [];
    return Array.isArray(v) ? v : String(v).split(',').map((s) => s.trim()).filter(Boolean);
  }
}

function coerce(spec: OptionSpec, raw: unknown, source: string): OptionValue {
  if (raw === undefined || raw === null) return undefined;
  switch (spec.type) {
    case 'string':
      return String(raw);
    case 'number': {
      const n = Number(raw);
      if (!Number.isFinite(n)) throw new UsageError(`--${spec.name} from ${source} must be a number, got "${String(raw)}"`);
      return n;
    }
    case 'boolean':
      if (raw === true || raw === 'true' || raw === '1' || raw === 'yes') return true;
      if (raw === false || raw === 'false' || raw === '0' || raw === 'no') return false;
      throw new UsageError(`--${spec.name} from ${source} must be true or false, got "${String(raw)}"`);
    case 'list':
      if (Array.isArray(raw)) return raw.map(String);
      return String(raw).split(',').map((s) => s.trim()).filter(Boolean);
  }
}

/** Parse argv against the specs, then fill from environment, YAML and defaults. */
export function loadConfig(argv: string[], roleSpecs: OptionSpec[], env: NodeJS.ProcessEnv = process.env): Config {
  const specs = withConfig(roleSpecs);
  const byName = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short as string, s]));
  const fromFlags = new Map<string, OptionValue>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    let spec: OptionSpec | undefined;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
      spec = byName.get(name);
      if (!spec && name.startsWith('no-') && byName.get(name.slice(3))?.type === 'boolean') {
        fromFlags.set(name.slice(3), false);
        continue;
      }
      if (!spec) throw new UsageError(`unknown flag --${name} (see --help)`);
    } else if (arg.startsWith('-') && arg.length === 2) {
      spec = byShort.get(arg.slice(1));
      if (!spec) throw new UsageError(`unknown flag ${arg} (see --help)`);
    } else {
      positionals.push(arg);
      continue;
    }
    if (spec.type === 'boolean' && inline === undefined) {
      fromFlags.set(spec.name, true);
      continue;
    }
    const raw = inline ?? argv[++i];
    if (raw === undefined) throw new UsageError(`--${spec.name} needs a value`);
    const value = coerce(spec, raw, 'the command line');
    if (spec.type === 'list') {
      const prev = (fromFlags.get(spec.name) as string[] | undefined) ?? [];
      fromFlags.set(spec.name, [...prev, ...(value as string[])]);
    } else {
      fromFlags.set(spec.name, value);
    }
  }

  let fromFile: Record<string, unknown> = {};
  const configPath = (fromFlags.get('config') as string | undefined) ?? env[envName('config')];
  if (configPath) {
    let text: string;
    try {
      text = readFileSync(resolve(configPath), 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read config file ${configPath}: ${(err as Error).message}`);
    }
    try {
      const parsed: unknown = parseYaml(text);
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) fromFile = parsed as Record<string, unknown>;
      else if (parsed !== null) throw new Error('top level must be a mapping');
    } catch (err) {
      throw new UsageError(`config file ${configPath} is not valid YAML: ${(err as Error).message}`);
    }
    for (const key of Object.keys(fromFile)) {
      if (!byName.has(key) && !commonOptions.some((o) => o.name === key)) throw new UsageError(`config file ${configPath}: unknown key "${key}"`);
    }
  }

  const values = new Map<string, OptionValue>();
  for (const spec of specs) {
    let v = fromFlags.get(spec.name);
    if (v === undefined && env[envOf(spec)] !== undefined) v = coerce(spec, env[envOf(spec)], `$${envOf(spec)}`);
    if (v === undefined && fromFile[spec.name] !== undefined) v = coerce(spec, fromFile[spec.name], `the config file`);
    if (v === undefined) v = spec.default;
    values.set(spec.name, v);
  }
  return new Config(values, positionals, new Set(fromFlags.keys()));
}

/** `--help` text for a command: its description, one line per option (`--config` included), the exit codes. */
export function renderHelp(usageLine: string, description: string, roleSpecs: OptionSpec[]): string {
  const specs = withConfig(roleSpecs);
  const rows = specs.map((s) => {
    const flag = `${s.short ? `-${s.short}, ` : ''}--${s.name}${s.type === 'boolean' ? '' : ' <' + s.type + '>'}`;
    const def = s.default !== undefined && s.default !== '' ? ` (default: ${Array.isArray(s.default) ? s.default.join(',') : String(s.default)})` : '';
    return [flag, `${s.help}${def}  [${envOf(s)}]`];
  });
  const width = Math.max(...rows.map((r) => r[0].length));
  return [`Usage: ${usageLine}`, '', description, '', 'Flags:', ...rows.map(([f, h]) => `  ${f.padEnd(width)}  ${h}`), '  -h, --help'.padEnd(width + 2) + '  Show this help', '', EXIT_CODES_HELP].join('\n');
}

/** The object store URL: --store, or a folder under the data dir (the embedded default). */
export function storeUrl(store: string | undefined, dataDir: string): string {
  return store ?? pathToFileURL(resolve(dataDir, 'store')).href;
}

/**
 * `--clickhouse-url` checked before anything connects: an http(s) URL, or absent/empty for embedded
 * chDB. A bad one is a usage error (exit 2), printed without its password.
 */
export function clickhouseUrl(url: string | undefined): string | undefined {
  if (url === undefined || url === '') return undefined;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`--clickhouse-url "${redact(url)}" is not a URL (want http(s)://[user:password@]host:8123)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`--clickhouse-url ${redact(url)}: want http:// or https://, not ${u.protocol}`);
  return url;
}

/** How to name the ClickHouse a role uses in a message: the URL without its password, or the embedded path. */
export function describeClickHouse(url: string | undefined, dataDir: string): string {
  return url ? `at ${redact(url)}` : `(embedded chDB in ${resolve(dataDir, 'clickhouse')})`;
}
