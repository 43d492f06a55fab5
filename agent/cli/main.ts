import type { Command } from './command.ts';
import { FatalError, UsageError } from './command.ts';

/** Subcommands, loaded lazily. Adding one is adding a file in commands/ and a line here. */
const commands: Record<string, { summary: string; load: () => Promise<Command> }> = {
  up: { summary: 'Run everything on this host (agent, store, functions, ClickHouse, query + UI)', load: async () => (await import('./commands/up.ts')).default },
  agent: { summary: 'Capture network syscalls with eBPF, parse protocols, ship batches', load: async () => (await import('./commands/agent.ts')).default },
  doctor: { summary: 'Check this host for what the agent needs (root, BPF, BTF, tracefs) and probe optional hooks', load: async () => (await import('./commands/doctor.ts')).default },
  functions: { summary: 'Build spans from batches in the store, encode tags, write ClickHouse', load: async () => (await import('./commands/functions.ts')).default },
  query: { summary: 'Serve the query API (traces, spans, service map, SQL), Jaeger API, OTLP ingest and web UI', load: async () => (await import('./commands/query.ts')).default },
  plugin: { summary: 'Build, check, sign, publish, search and install Wasm plugins (AssemblyScript SDK, ABI v1)', load: async () => (await import('./commands/plugin.ts')).default },
};

const VERSION = '0.1.0';

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return [
    'riptide — zero-code distributed tracing for microservices',
    '',
    'Usage: riptide <command> [flags]     (riptide <command> --help for its flags)',
    '',
    'Commands:',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'Common flags (also RIPTIDE_* variables and --config FILE.yaml):',
    '  --data-dir, --port, --store, --s3-endpoint, --clickhouse-url',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(VERSION + '\n');
    return 0;
  }
  const entry = commands[name];
  if (!entry) {
    process.stderr.write(`riptide: unknown command "${name}" (see riptide --help)\n`);
    return 2;
  }
  const cmd = await entry.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(cmd.help.trimEnd() + '\n');
    return 0;
  }
  try {
    return await cmd.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`riptide ${name}: ${err.message}\n`);
      return 2;
    }
    if (err instanceof FatalError) {
      process.stderr.write(`riptide ${name}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
