/**
 * `riptide plugin` — build and inspect Wasm plugins.
 *
 *   riptide plugin build <dir> [--out <dir>] [--runtime stub]
 *   riptide plugin check <dir|manifest> [--payload FILE --hook parse]
 *   riptide plugin keygen [--out <prefix>]
 *   riptide plugin sign <dir|manifest> --key <file>
 *   riptide plugin publish <dir|manifest> --marketplace <url> --token <t> [--key <file>]
 *   riptide plugin search [text] --marketplace <url> [--protocol p] [--hook h]
 *   riptide plugin install <name@range> --marketplace <url> --trusted-key <file|base64>
 *   riptide plugin yank <name@version> --marketplace <url> --token <t>
 */
import type { Command } from '../command.ts';
import { FatalError, UsageError } from '../command.ts';
import { loadConfig, renderHelp } from '../config.ts';
import type { OptionSpec } from '../config.ts';

const options: OptionSpec[] = [
  { name: 'out', type: 'string', help: 'build: output folder (default <dir>/build); keygen: file prefix (default riptide-publisher)' },
  { name: 'runtime', type: 'string', help: 'build: AssemblyScript runtime; the ABI needs stub', default: 'stub' },
  { name: 'key', type: 'string', help: 'sign, publish: the publisher private key file from keygen (<prefix>.key)' },
  { name: 'marketplace', type: 'string', help: 'publish, search, install, yank: marketplace base URL (the query server, e.g. http://127.0.0.1:8686)' },
  { name: 'token', type: 'string', help: 'publish, yank: publish token (or RIPTIDE_MARKETPLACE_TOKEN)' },
  { name: 'trusted-key', type: 'list', help: 'install: publisher public keys to trust (files or base64; comma-separated or repeated)' },
  { name: 'dir', type: 'string', help: 'install: plugins folder (default <data-dir>/plugins)' },
  { name: 'data-dir', type: 'string', help: 'install: where local state lives', default: '.riptide' },
  { name: 'description', type: 'string', help: 'publish: one line shown in the marketplace (default: "description" in plugin.json)' },
  { name: 'protocol', type: 'string', help: 'search: only plugins declaring this protocol' },
  { name: 'hook', type: 'string', help: 'search: only plugins with this hook (check, parse, http_request, http_response)' },
  { name: 'store', type: 'string', help: 'serve: object store holding plugins/ (file:///path or s3://bucket/prefix; default <data-dir>/store)' },
  { name: 's3-endpoint', type: 'string', help: 'serve: S3-compatible endpoint URL' },
  { name: 'publish-token', type: 'list', help: 'serve: bearer tokens allowed to publish and yank (none: read-only)' },
  { name: 'port', type: 'number', help: 'serve: HTTP port', default: 8686 },
  { name: 'host', type: 'string', help: 'serve: address to listen on', default: '127.0.0.1' },
  { name: 'max-module-kb', type: 'number', help: 'serve: largest module accepted', default: 4096 },
];

const MARKETPLACE_SUBCOMMANDS = new Set(['keygen', 'sign', 'publish', 'search', 'install', 'yank', 'serve']);

const help = renderHelp(
  'riptide plugin <build|check|keygen|sign|publish|search|install|yank|serve> [args] [flags]',
  [
    'Work with Wasm plugins written in AssemblyScript against @riptide/sdk-plugin (ABI v1, sdk-plugin/ABI.md).',
    '',
    'Subcommands:',
    '  build <dir>   Compile <dir>/assembly/index.ts with asc (-O3 --runtime stub) and write',
    '                <dir>/build/<name>.wasm and <dir>/build/manifest.json (name, version, abi, hooks,',
    '                protocols, sha256 of the module, memoryPages, timeBudgetMs, maxOutputBytes)',
    '                from <dir>/plugin.json.',
    '  check <path>  Load a built plugin (a folder or its manifest.json) the way the agent does:',
    '                verify the hash, the ABI and the hooks, meter it; print its status.',
    '',
    'Marketplace (docs/MARKETPLACE.md):',
    '  keygen              Write an ed25519 publisher key pair: <prefix>.key (secret) and <prefix>.pub.',
    '  sign <path>         Sign a built plugin (module sha256 + manifest): writes signature.json next to',
    '                      its manifest.json.',
    '  publish <path>      Upload module, manifest and signature (signs first when --key is given).',
    '  search [text]       List marketplace plugins matching text / --protocol / --hook.',
    '  install <n@range>   Download the newest matching version, verify its hash and signature against',
    '                      --trusted-key, and write <dir>/<name>/<version> (+ <name>/current).',
    '  yank <n@version>    Hide a version from range resolution (exact fetches still work).',
    '  serve               Run the marketplace alone (API + page at /marketplace) on --store.',
    '',
    'Configure the agent with the folder or manifest path of each plugin, or name@range with',
    '--marketplace and --trusted-key; it hot-reloads changed files and picks up new matching versions.',
  ].join('\n'),
  options,
);

const command: Command = {
  name: 'plugin',
  summary: 'Build and check Wasm plugins (AssemblyScript SDK, ABI v1)',
  help,
  async run(argv: string[]): Promise<number> {
    const cfg = loadConfig(argv, options);
    const [sub, target, ...extra] = cfg.positionals;
    if (!sub) throw new UsageError('missing subcommand: build, check, keygen, sign, publish, search, install or yank (see --help)');
    if (MARKETPLACE_SUBCOMMANDS.has(sub)) {
      if (extra.length) throw new UsageError(`unexpected argument "${extra[0]}"`);
      const { runMarketplaceCommand } = await import('../../plugins/marketplace-cli.ts');
      return runMarketplaceCommand(sub, target, {
        out: cfg.string('out'),
        key: cfg.string('key'),
        marketplace: cfg.string('marketplace'),
        token: cfg.string('token') ?? process.env.RIPTIDE_MARKETPLACE_TOKEN,
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
    throw new UsageError(`unknown subcommand "${sub}" (build, check, keygen, sign, publish, search, install, yank or serve)`);
  },
};

export default command;
