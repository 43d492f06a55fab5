/**
 * The `--output` format: one JSON object per captured message (the stable debugging format, see
 * README), with the parsed L7 fields when a parser recognised the payload.
 */
import type { CapturedMessage, ProcessInfo } from './capture/message.ts';
import { metrics } from './metrics.ts';
import type { L7Message } from './protocols/parser.ts';
import { L7_FIELDS } from './contract/fields.ts';

/** L7 property → NDJSON key, in catalogue order (agent/contract/fields.ts). */
const L7_KEYS: ReadonlyArray<[keyof L7Message, string]> = L7_FIELDS.map((f) => [f.key, f.ndjson]);

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
  // TLS plaintext that no parser recognised still says so (parsed messages carry the l7 tls flag).
  if (l7.length === 0) return m.tls ? `${base.slice(0, -1)},"tls":true}` : base;
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
    `"tcp_seq":${m.tcpSeq},"syscall_trace_id":${m.syscallTraceId},"handoff_trace_id":${m.handoffTraceId ?? 0},"bytes":${m.bytes},"payload":"${payload}"${netToJson(m)}}`
  );
}

/** Network capture's fields (issue 19, --net-interfaces), only on the messages that have them. */
function netToJson(m: CapturedMessage): string {
  let out = '';
  if (m.observationPoint !== undefined) out += `,"observation_point":${JSON.stringify(m.observationPoint)}`;
  if (m.tcpRetransmits !== undefined) out += `,"tcp_retransmits":${m.tcpRetransmits}`;
  if (m.tcpSrttUs !== undefined) out += `,"tcp_srtt_us":${m.tcpSrttUs}`;
  if (m.connectFailed) out += ',"connect_failed":true';
  return out;
}

/**
 * Buffers NDJSON lines and writes them in chunks; past the cap, lines are dropped and counted.
 * When the stream fails (EPIPE: the reader of `--output - | head -1` is gone) nothing more is
 * written and `onClosed` is told once, so the agent can stop cleanly instead of crashing.
 */
export class LineWriter {
  private chunks: string[] = [];
  private pendingBytes = 0;
  private waitingDrain = false;
  private failed = false;
  private readonly dropped = metrics.counter('riptide_output_dropped_total', 'Lines not written to --output because it was too slow');
  constructor(
    private readonly stream: NodeJS.WritableStream,
    private readonly capBytes: number,
    onClosed?: (err: NodeJS.ErrnoException) => void,
  ) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (this.failed) return;
      this.failed = true;
      this.chunks = [];
      this.pendingBytes = 0;
      onClosed?.(err);
    });
  }
  /** True once the stream failed or its reader went away. */
  get closed(): boolean {
    return this.failed;
  }
  push(line: string): void {
    if (this.failed) return;
    if (this.pendingBytes > this.capBytes) {
      this.dropped.inc();
      return;
    }
    this.chunks.push(line);
    this.pendingBytes += line.length + 1;
  }
  flush(): void {
    if (this.failed || this.chunks.length === 0 || this.waitingDrain) return;
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
