import type { Command } from './command.ts';
import { EXIT_CODES_HELP, toCliError } from './command.ts';
import { redact } from './redact.ts';

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
    'Every command takes --config FILE.yaml and RIPTIDE_* variables for its flags.',
    'Common flags (each role lists those it uses): --data-dir, --port, --store, --s3-endpoint, --clickhouse-url',
    '',
    'A failure is one line on stderr, "riptide <command>: <what went wrong>" (passwords shown as ***),',
    'and one of these exit codes; RIPTIDE_DEBUG=1 adds the stack trace.',
    EXIT_CODES_HELP,
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
  const dashDash = rest.indexOf('--');
  const flags = dashDash >= 0 ? rest.slice(0, dashDash) : rest;
  if (flags.includes('--help') || flags.includes('-h')) {
    process.stdout.write((cmd.helpFor?.(flags) ?? cmd.help).trimEnd() + '\n');
    return 0;
  }
  try {
    return await cmd.run(rest);
  } catch (err) {
    return reportFailure(name, err);
  }
}

/** One line on stderr, secrets redacted; returns the exit code for the kind of failure. */
export function reportFailure(command: string | undefined, err: unknown): number {
  const e = toCliError(err);
  const prefix = command ? `riptide ${command}` : 'riptide';
  const line = redact(e.message.split('\n')[0].trim());
  process.stderr.write(`${line.startsWith(prefix + ': ') ? line : `${prefix}: ${line}`}\n`);
  if (process.env.RIPTIDE_DEBUG && err instanceof Error && err.stack) process.stderr.write(redact(err.stack) + '\n');
  return e.exitCode;
}
