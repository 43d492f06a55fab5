/**
 * `riptide plugin` — build and inspect Wasm plugins.
 *
 *   riptide plugin build <dir> [--out <dir>] [--runtime stub]
 *   riptide plugin check <dir|manifest> [--payload FILE --hook parse]
 */
import type { Command } from '../command.ts';
import { FatalError, UsageError } from '../command.ts';
import { loadConfig, renderHelp } from '../config.ts';
import type { OptionSpec } from '../config.ts';

const options: OptionSpec[] = [
  { name: 'out', type: 'string', help: 'build: output folder (default <dir>/build)' },
  { name: 'runtime', type: 'string', help: 'build: AssemblyScript runtime; the ABI needs stub', default: 'stub' },
];

const help = renderHelp(
  'riptide plugin <build|check> <dir> [flags]',
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
    'Configure the agent with the folder or manifest path of each plugin; it hot-reloads changed files.',
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
    if (!sub) throw new UsageError('missing subcommand: build or check (see --help)');
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
    throw new UsageError(`unknown subcommand "${sub}" (build or check)`);
  },
};

export default command;
