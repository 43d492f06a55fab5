/**
 * `riptide plugin <subcommand>` — build, check, sign, publish, search, install, yank and serve Wasm
 * plugins. Each subcommand declares its arguments and flags in {@link SUBCOMMANDS}, which gives it its
 * own `--help` and refuses flags it does not take; the marketplace half runs in
 * agent/plugins/marketplace-cli.ts.
 */
import type { Command } from '../command.ts';
import { FatalError, UsageError } from '../command.ts';
import { loadConfig, renderHelp } from '../config.ts';
import type { OptionSpec } from '../config.ts';

/** Every flag of every subcommand; each subcommand takes only those it lists in {@link SUBCOMMANDS}. */
const options: OptionSpec[] = [
  { name: 'out', type: 'string', help: 'Output folder (default <dir>/build)' },
  { name: 'runtime', type: 'string', help: 'AssemblyScript runtime; the ABI needs stub', default: 'stub' },
  { name: 'key', type: 'string', help: 'The publisher private key file from keygen (<prefix>.key)' },
  { name: 'marketplace', type: 'string', help: 'Marketplace base URL (the query server, e.g. http://127.0.0.1:8686)' },
  // Its own variable: RIPTIDE_TOKEN is the query API's token, not a publish token.
  { name: 'token', type: 'string', env: 'RIPTIDE_MARKETPLACE_TOKEN', help: 'Publish token (one of the server\'s --publish-token values)' },
  { name: 'trusted-key', type: 'list', help: 'Publisher public keys to trust (files or base64; comma-separated or repeated)' },
  { name: 'dir', type: 'string', help: 'Plugins folder (default <data-dir>/plugins)' },
  { name: 'data-dir', type: 'string', help: 'Where local state lives', default: '.riptide' },
  { name: 'description', type: 'string', help: 'One line shown in the marketplace (default: "description" in plugin.json)' },
  { name: 'protocol', type: 'string', help: 'Only plugins declaring this protocol' },
  { name: 'hook', type: 'string', help: 'Only plugins with this hook (check, parse, http_request, http_response)' },
  { name: 'store', type: 'string', help: 'Object store holding plugins/ (file:///path or s3://bucket/prefix; default <data-dir>/store)' },
  { name: 's3-endpoint', type: 'string', help: 'S3-compatible endpoint URL' },
  { name: 'publish-token', type: 'list', help: 'Bearer tokens allowed to publish and yank (none: read-only)' },
  { name: 'port', type: 'number', help: 'HTTP port', default: 8686 },
  { name: 'host', type: 'string', help: 'Address to listen on', default: '127.0.0.1' },
  { name: 'max-module-kb', type: 'number', help: 'Largest module accepted', default: 4096 },
];

interface Subcommand {
  /** Arguments after the subcommand name, for the usage line. */
  args: string;
  /** One line for `riptide plugin --help`. */
  summary: string;
  /** The rest of its `--help`. */
  description: string[];
  /** The flags it takes, in help order. */
  flags: string[];
  /** Help text that differs from the shared one. */
  flagHelp?: Record<string, string>;
}

const SUBCOMMANDS: Record<string, Subcommand> = {
  build: {
    args: '<dir>',
    summary: 'Compile a plugin source folder to <dir>/build/<name>.wasm + manifest.json',
    description: [
      'Compiles <dir>/assembly/index.ts with asc (-O3 --runtime stub) and writes <dir>/build/<name>.wasm',
      'and <dir>/build/manifest.json (name, version, abi, hooks, protocols, sha256 of the module,',
      'memoryPages, timeBudgetMs, maxOutputBytes) from <dir>/plugin.json.',
    ],
    flags: ['out', 'runtime'],
  },
  check: {
    args: '<dir|manifest>',
    summary: 'Load a built plugin the way the agent does and print its status',
    description: ['Loads a built plugin (a folder or its manifest.json) the way the agent does: verifies the hash,', 'the ABI and the hooks, meters it, and prints its status.'],
    flags: [],
  },
  keygen: {
    args: '',
    summary: 'Write an ed25519 publisher key pair (<prefix>.key, <prefix>.pub)',
    description: ['Writes an ed25519 publisher key pair: <prefix>.key (secret, mode 0600) and <prefix>.pub.', 'Refuses to overwrite existing files.'],
    flags: ['out'],
    flagHelp: { out: 'File prefix (default riptide-publisher)' },
  },
  sign: {
    args: '<dir|manifest>',
    summary: 'Sign a built plugin: writes signature.json next to its manifest',
    description: ['Signs a built plugin (module sha256 + manifest) with --key and writes signature.json next to', 'its manifest.json.'],
    flags: ['key'],
  },
  publish: {
    args: '<dir|manifest>',
    summary: 'Upload module, manifest and signature to a marketplace',
    description: ['Uploads the module, manifest and signature (signs first when --key is given) to --marketplace,', 'authorised by --token (RIPTIDE_MARKETPLACE_TOKEN).'],
    flags: ['marketplace', 'token', 'key', 'description'],
    flagHelp: { key: 'Sign with this private key first (otherwise signature.json must exist)' },
  },
  search: {
    args: '[text]',
    summary: 'List marketplace plugins matching text / --protocol / --hook',
    description: ['Lists the plugins on --marketplace whose name or description matches text, filtered by', '--protocol and --hook.'],
    flags: ['marketplace', 'protocol', 'hook'],
  },
  install: {
    args: '<name@range>',
    summary: 'Download, verify and install the newest matching version',
    description: [
      'Downloads the newest version matching the range, verifies its hash and signature against',
      '--trusted-key, and writes <dir>/<name>/<version> (+ <name>/current, what the agent loads).',
    ],
    flags: ['marketplace', 'trusted-key', 'dir', 'data-dir'],
  },
  yank: {
    args: '<name@version>',
    summary: 'Hide a version from range resolution (exact fetches still work)',
    description: ['Hides a version from range resolution; exact fetches still work. Needs --token.'],
    flags: ['marketplace', 'token'],
    flagHelp: { token: 'Publish token (one of the server\'s --publish-token values)' },
  },
  serve: {
    args: '',
    summary: 'Run the marketplace alone (API + page at /marketplace) on --store',
    description: ['Runs the marketplace alone (API + page at /marketplace, /healthz, /metrics) on --store.'],
    flags: ['store', 's3-endpoint', 'data-dir', 'publish-token', 'port', 'host', 'max-module-kb'],
  },
};

const SUB_NAMES = Object.keys(SUBCOMMANDS);
const MARKETPLACE_SUBCOMMANDS = new Set(['keygen', 'sign', 'publish', 'search', 'install', 'yank', 'serve']);

function subOptions(name: string): OptionSpec[] {
  const sub = SUBCOMMANDS[name];
  return sub.flags.map((f) => {
    const spec = options.find((o) => o.name === f) as OptionSpec;
    return sub.flagHelp?.[f] ? { ...spec, help: sub.flagHelp[f] } : spec;
  });
}

function subHelp(name: string): string {
  const sub = SUBCOMMANDS[name];
  return renderHelp(`riptide plugin ${name}${sub.args ? ' ' + sub.args : ''} [flags]`, [sub.summary + '.', '', ...sub.description].join('\n'), subOptions(name));
}

const width = Math.max(...SUB_NAMES.map((n) => `${n} ${SUBCOMMANDS[n].args}`.trimEnd().length));
const help = renderHelp(
  `riptide plugin <${SUB_NAMES.join('|')}> [args] [flags]`,
  [
    'Work with Wasm plugins written in AssemblyScript against @riptide/sdk-plugin (ABI v1, sdk-plugin/ABI.md)',
    'and with the plugin marketplace (docs/MARKETPLACE.md). `riptide plugin <subcommand> --help` shows',
    'the flags each one takes.',
    '',
    'Subcommands:',
    ...SUB_NAMES.map((n) => `  ${`${n} ${SUBCOMMANDS[n].args}`.trimEnd().padEnd(width)}  ${SUBCOMMANDS[n].summary}`),
    '',
    'Configure the agent with the folder or manifest path of each plugin, or name@range with',
    '--marketplace and --trusted-key; it hot-reloads changed files and picks up new matching versions.',
  ].join('\n'),
  [],
);

/** The subcommand in argv: the first word that is not a flag or a flag's value (every plugin flag takes one). */
function findSubcommand(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') return argv[i + 1];
    if (a === '--help' || a === '-h' || (a.startsWith('--') && a.includes('='))) continue;
    if (a.startsWith('-')) {
      i++;
      continue;
    }
    return a;
  }
  return undefined;
}

const command: Command = {
  name: 'plugin',
  summary: 'Build and check Wasm plugins (AssemblyScript SDK, ABI v1)',
  help,
  helpFor(argv) {
    const sub = findSubcommand(argv);
    return sub && SUBCOMMANDS[sub] ? subHelp(sub) : help;
  },
  async run(argv: string[]): Promise<number> {
    const cfg = loadConfig(argv, options);
    const [sub, target, ...extra] = cfg.positionals;
    if (!sub) throw new UsageError(`missing subcommand: ${SUB_NAMES.join(', ')} (see --help)`);
    if (!SUBCOMMANDS[sub]) throw new UsageError(`unknown subcommand "${sub}" (${SUB_NAMES.join(', ')})`);
    for (const flag of cfg.flagsGiven) {
      if (flag !== 'config' && !SUBCOMMANDS[sub].flags.includes(flag)) throw new UsageError(`${sub}: unknown flag --${flag} (see riptide plugin ${sub} --help)`);
    }
    if (MARKETPLACE_SUBCOMMANDS.has(sub)) {
      if (extra.length) throw new UsageError(`unexpected argument "${extra[0]}"`);
      const { runMarketplaceCommand } = await import('../../plugins/marketplace-cli.ts');
      return runMarketplaceCommand(sub, target, {
        out: cfg.string('out'),
        key: cfg.string('key'),
        marketplace: cfg.string('marketplace'),
        token: cfg.string('token'),
        trustedKeys: cfg.list('trusted-key'),
        dir: cfg.string('dir'),
        dataDir: cfg.string('data-dir') ?? '.riptide',
        description: cfg.string('description'),
        protocol: cfg.string('protocol'),
        hook: cfg.string('hook'),
        store: cfg.string('store'),
        s3Endpoint: cfg.string('s3-endpoint'),
        publishTokens: cfg.list('publish-token'),
        port: cfg.number('port') ?? 8686,
        host: cfg.string('host') ?? '127.0.0.1',
        maxModuleBytes: Math.round((cfg.number('max-module-kb') ?? 4096) * 1024),
      });
    }
    if (!target) throw new UsageError(`${sub}: missing plugin folder`);
    if (extra.length) throw new UsageError(`unexpected argument "${extra[0]}"`);
    if (sub === 'build') {
      const runtime = cfg.string('runtime');
      if (runtime !== 'stub' && runtime !== 'incremental' && runtime !== 'minimal') throw new UsageError('--runtime must be stub, incremental or minimal');
      const { buildPlugin, BuildError } = await import('../../../sdk-plugin/src/build.ts');
      try {
        const r = await buildPlugin(target, { outDir: cfg.string('out'), runtime });
        process.stdout.write(`built ${r.manifest.name}@${r.manifest.version} in ${Math.round(r.ms)} ms\n  ${r.wasmPath}\n  ${r.manifestPath}\n  sha256 ${r.manifest.sha256}\n`);
        return 0;
      } catch (err) {
        if (err instanceof BuildError) throw new FatalError(err.message);
        throw err;
      }
    }
    if (sub === 'check') {
      const { loadPlugins } = await import('../../plugins/host.ts');
      const { MetricsRegistry } = await import('../../metrics.ts');
      const lines: string[] = [];
      const plugins = await loadPlugins({ paths: [target], reloadIntervalMs: 0, metrics: new MetricsRegistry(), log: (l) => lines.push(l) });
      const [st] = plugins.host.status();
      plugins.close();
      if (st.state !== 'active') throw new FatalError((lines[0] ?? `${target}: not loadable`).replace(/^riptide: /, '').replace(/; capture continues without it$/, ''));
      process.stdout.write(`ok ${st.name}@${st.version}: loads, ABI v1, hooks verified, metered\n`);
      return 0;
    }
    throw new UsageError(`unknown subcommand "${sub}"`);
  },
};

export default command;
