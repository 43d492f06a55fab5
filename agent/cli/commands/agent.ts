import type { Command } from '../command.ts';
import { FatalError, UsageError } from '../command.ts';
import type { OptionSpec } from '../config.ts';
import { commonOptions, loadConfig, renderHelp } from '../config.ts';
import type { CaptureSink } from '../../capture/capture.ts';
import { Capture } from '../../capture/capture.ts';
import type { CapturedMessage, ProcessInfo } from '../../capture/message.ts';
import { runPreflight } from '../../capture/preflight.ts';
import { startStatusServer } from '../../status-server.ts';
import type { L7Message } from '../../protocols/parser.ts';
import { createDefaultRegistry } from '../../protocols/registry.ts';
import { metrics } from '../../metrics.ts';

const options: OptionSpec[] = [
  ...commonOptions.map((o) => (o.name === 'port' ? { ...o, default: 8687, help: 'HTTP port for /healthz and /metrics (0 picks a free port)' } : o)),
  { name: 'output', short: 'o', type: 'string', help: 'Write every captured message as one JSON line to this file; "-" is stdout (debugging: nothing is shipped)' },
  { name: 'capture-bytes', type: 'number', help: 'Payload bytes captured per message (max 8192)', default: 1024 },
  { name: 'ring-mb', type: 'number', help: 'BPF ring buffer size in MiB (power of two)', default: 8 },
  { name: 'filter-pid', type: 'list', help: 'Only capture these process ids (comma-separated; filters are OR-ed)' },
  { name: 'filter-port', type: 'list', help: 'Only capture sockets with these local or remote ports' },
  { name: 'filter-comm', type: 'list', help: 'Only capture processes with these names (/proc/pid/comm)' },
  { name: 'exclude-pid', type: 'list', help: 'Never capture these process ids (the agent itself is always excluded)' },
  { name: 'max-output-mb', type: 'number', help: 'Pending --output bytes held in memory before lines are dropped (counted)', default: 64 },
  { name: 'extra-headers', type: 'list', help: 'HTTP headers to record as attributes (comma-separated names)' },
];

const help = renderHelp(
  'riptide agent [flags]',
  [
    'Captures the data syscalls (read/write/send/recv families) of every process on this host with eBPF,',
    'with socket tuples, TCP sequence numbers, syscall-trace ids and the head of each payload.',
    'Needs root (or CAP_BPF + CAP_PERFMON), kernel BTF and tracefs; run `riptide doctor` to check a host.',
    '',
    'The first line on stderr ("riptide agent: capturing …") is printed once capture is live.',
    'SIGINT/SIGTERM detach every BPF program and flush before exit.',
    '',
    'Examples:',
    '  riptide agent --output - --filter-port 8080        # NDJSON of port-8080 traffic to stdout',
    '  riptide agent --store s3://traces/riptide --s3-endpoint http://127.0.0.1:9000',
  ].join('\n'),
  options,
);

function parseNumbers(values: string[], what: string): number[] {
  return values.map((v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new UsageError(`--${what}: "${v}" is not a positive integer`);
    return n;
  });
}

/** The `--output` line for one message: the stable debugging format (see docs/ARCHITECTURE.md). */
const L7_KEYS: Array<[keyof L7Message, string]> = [
  ['l7Protocol', 'l7_protocol'],
  ['msgType', 'msg_type'],
  ['requestType', 'request_type'],
  ['requestDomain', 'request_domain'],
  ['requestResource', 'request_resource'],
  ['endpoint', 'endpoint'],
  ['requestId', 'request_id'],
  ['responseCode', 'response_code'],
  ['responseStatus', 'response_status'],
  ['responseException', 'response_exception'],
  ['requestLength', 'request_length'],
  ['responseLength', 'response_length'],
  ['traceId', 'trace_id'],
  ['spanId', 'span_id'],
  ['parentSpanId', 'parent_span_id'],
  ['xRequestId', 'x_request_id'],
  ['attributes', 'attributes'],
  ['truncated', 'truncated'],
];

/** snake_case JSON object of one application message (absent fields left out). */
export function l7ToJson(m: L7Message): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, name] of L7_KEYS) if (m[k] !== undefined) out[name] = m[k];
  return out;
}

/**
 * The `--output` line for one message: capture fields, then — when a parser recognised the payload —
 * the first application message's fields at top level and every message in `l7`.
 */
export function messageToJson(m: CapturedMessage, proc: ProcessInfo | undefined, l7: readonly L7Message[] = []): string {
  const base = captureToJson(m, proc);
  if (l7.length === 0) return base;
  const first = JSON.stringify(l7ToJson(l7[0]));
  return `${base.slice(0, -1)},${first.slice(1, -1)},"l7":${JSON.stringify(l7.map(l7ToJson))}}`;
}

function captureToJson(m: CapturedMessage, proc: ProcessInfo | undefined): string {
  // Hand-built: JSON.stringify of the whole object costs several µs per line; only the free-text
  // fields need escaping. ts_ns/enter_ns/exit_ns are written as exact integers.
  const payload = Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength).toString('base64');
  return (
    `{"ts_ns":${m.tsNs},"enter_ns":${m.enterNs},"exit_ns":${m.exitNs},"pid":${m.pid},"tid":${m.tid},"coroutine_id":${m.coroutineId},` +
    `"process_name":${JSON.stringify(m.processName)},"cmdline":${JSON.stringify(proc?.cmdline ?? '')},"container_id":"${proc?.containerId ?? ''}",` +
    `"syscall":"${m.syscall}","direction":"${m.direction}","socket_id":${m.socketId},"family":"${m.family}","l4":"${m.l4}",` +
    `"local_ip":"${m.localIp}","local_port":${m.localPort},"remote_ip":"${m.remoteIp}","remote_port":${m.remotePort},"role":"${m.role}",` +
    `"tcp_seq":${m.tcpSeq},"syscall_trace_id":${m.syscallTraceId},"bytes":${m.bytes},"payload":"${payload}"}`
  );
}

/** Buffers NDJSON lines and writes them in chunks; past the cap, lines are dropped and counted. */
class LineWriter {
  private chunks: string[] = [];
  private pendingBytes = 0;
  private waitingDrain = false;
  private readonly dropped = metrics.counter('riptide_output_dropped_total', 'Lines not written to --output because it was too slow');
  constructor(
    private readonly stream: NodeJS.WritableStream,
    private readonly capBytes: number,
  ) {}
  push(line: string): void {
    if (this.pendingBytes > this.capBytes) {
      this.dropped.inc();
      return;
    }
    this.chunks.push(line);
    this.pendingBytes += line.length + 1;
  }
  flush(): void {
    if (this.chunks.length === 0 || this.waitingDrain) return;
    const text = this.chunks.join('\n') + '\n';
    this.chunks = [];
    this.pendingBytes = 0;
    if (!this.stream.write(text)) {
      this.waitingDrain = true;
      this.stream.once('drain', () => {
        this.waitingDrain = false;
        this.flush();
      });
    }
  }
}

const command: Command = {
  name: 'agent',
  summary: 'Capture network syscalls with eBPF',
  help,
  async run(argv) {
    const cfg = loadConfig(argv, options);
    if (cfg.positionals.length) throw new UsageError(`unexpected argument "${cfg.positionals[0]}"`);
    const output = cfg.string('output');
    if (!output) {
      throw new UsageError('shipping to the object store is not wired into this build yet; use --output - (or a file) for now');
    }
    const pre = runPreflight();
    if (!pre.ok) throw new FatalError(`cannot capture: ${pre.problem}`);

    const ringMb = cfg.number('ring-mb') ?? 8;
    const filter = {
      pids: parseNumbers(cfg.list('filter-pid'), 'filter-pid'),
      ports: parseNumbers(cfg.list('filter-port'), 'filter-port'),
      comms: cfg.list('filter-comm'),
      excludePids: parseNumbers(cfg.list('exclude-pid'), 'exclude-pid'),
    };

    const { createWriteStream } = await import('node:fs');
    const stream = output === '-' ? process.stdout : createWriteStream(output, { flags: 'a' });
    const writer = new LineWriter(stream, (cfg.number('max-output-mb') ?? 64) << 20);
    const registry = createDefaultRegistry({ extraHeaders: cfg.list('extra-headers').map((h) => h.toLowerCase()) });
    const sink: CaptureSink = {
      onMessage: (m, proc) => writer.push(messageToJson(m, proc, registry.parse(m))),
      onSocketClosed: (e) => registry.onSocketClosed(e.socketId),
    };

    let capture: Capture;
    try {
      capture = Capture.start(
        { captureLimit: cfg.number('capture-bytes'), ringBytes: Math.round(ringMb * 1024 * 1024), filter },
        sink,
      );
    } catch (err) {
      throw new FatalError(`cannot capture: ${(err as Error).message}`);
    }
    const flushTimer = setInterval(() => writer.flush(), 20);
    const status = await startStatusServer(cfg.number('port') ?? 8687);
    const filters = [
      filter.pids.length ? `pids ${filter.pids.join(',')}` : '',
      filter.ports.length ? `ports ${filter.ports.join(',')}` : '',
      filter.comms.length ? `names ${filter.comms.join(',')}` : '',
    ].filter(Boolean);
    process.stderr.write(
      `riptide agent: capturing on ${capture.attachedPrograms} tracepoints${filters.length ? ` (${filters.join(' or ')})` : ' (all processes)'}; ` +
        `metrics on http://127.0.0.1:${status.port}/metrics; output to ${output === '-' ? 'stdout' : output}\n`,
    );

    await new Promise<void>((resolve) => {
      const stop = (): void => resolve();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    capture.stop();
    clearInterval(flushTimer);
    writer.flush();
    await status.close();
    if (stream !== process.stdout) await new Promise<void>((r) => (stream as NodeJS.WritableStream).end(r));
    process.stderr.write('riptide agent: stopped; all BPF programs detached\n');
    return 0;
  },
};

export default command;
