/**
 * The agent's stages after capture, one job each:
 *
 *   Capture (decoded messages) → ProtocolRegistry (built-ins + Wasm plugin parsers)
 *     → HTTP hooks (Wasm plugins: business ids, trace ids, status overrides)
 *     → an output: the shipper (batches → spool → object store) or NDJSON lines (--output)
 *
 * `riptide agent` and `riptide up` both build this; tests drive it directly.
 *
 * @example
 *   const pipeline = new AgentPipeline({ registry, output: shipperOutput(shipper) });
 *   Capture.start(options, pipeline);
 */
import type { CaptureSink } from './capture/capture.ts';
import type { CapturedMessage, ProcessInfo, SocketClosed } from './capture/message.ts';
import type { LineWriter } from './ndjson-output.ts';
import { messageToJson } from './ndjson-output.ts';
import type { HttpHookPlugin } from './plugins/types.ts';
import { runHttpHooks } from './plugins/types.ts';
import type { L7Message, ParseContext } from './protocols/parser.ts';
import type { ProtocolRegistry } from './protocols/registry.ts';
import type { Shipper } from './shipping/shipper.ts';
import type { CaptureSizes, VerdictTarget } from './capture/verdicts.ts';
import { SocketVerdicts } from './capture/verdicts.ts';

/** Where parsed messages go. */
export interface PipelineOutput {
  message(m: CapturedMessage, l7: L7Message[], proc: ProcessInfo | undefined): void;
  socketClosed(e: SocketClosed): void;
  /**
   * The output uses every captured message and its payload head as captured (NDJSON lines, shipped
   * payloads): no per-socket verdicts then (agent/capture/verdicts.ts), the kernel sends everything.
   */
  needsEverything?: boolean;
  /** The output drops the payload of every message it is given (keeps no reference to it). */
  dropsPayload?: boolean;
}

export function ndjsonOutput(writer: LineWriter): PipelineOutput {
  return {
    message: (m, l7, proc) => writer.push(messageToJson(m, proc, l7)),
    socketClosed: () => {},
    needsEverything: true,
  };
}

const NO_PAYLOAD = new Uint8Array(0);

export interface ShipperOutputOptions {
  /**
   * Ship the captured payload heads with the parsed fields. Off by default: bodies are not stored
   * unless asked for (privacy), and the functions need only the parsed fields. Dropping them here
   * also frees the payload slabs before the slot is cut, instead of holding them for seconds.
   */
  keepPayload?: boolean;
}

export function shipperOutput(shipper: Shipper, options: ShipperOutputOptions = {}): PipelineOutput {
  // Process metadata is sent once per (pid, start) per batch by the shipper; hand it over only
  // when the metadata object for a pid changes (the cache returns the same object until then).
  const lastInfo = new Map<number, ProcessInfo>();
  const keepPayload = options.keepPayload ?? false;
  return {
    message(m, l7, proc) {
      if (proc && lastInfo.get(m.pid) !== proc) {
        if (lastInfo.size > 65536) lastInfo.clear();
        lastInfo.set(m.pid, proc);
        shipper.addProcess(proc);
      }
      const parsed = m as CapturedMessage & { l7: L7Message[] };
      parsed.l7 = l7;
      if (!keepPayload) parsed.payload = NO_PAYLOAD;
      shipper.add(parsed);
    },
    socketClosed: (e) => shipper.socketClosed(e),
    needsEverything: keepPayload,
    dropsPayload: !keepPayload,
  };
}

export interface AgentPipelineOptions {
  registry: ProtocolRegistry;
  output: PipelineOutput;
  /** HTTP hooks from Wasm plugins, run on every parsed HTTP message (the list may change on reload). */
  httpHooks?: () => readonly HttpHookPlugin[];
  extraHeaders?: readonly string[];
  /**
   * Per-socket verdicts to the kernel (default true): count-only for sockets nothing parses, payload
   * caps for recognised protocols (`sizes`). Off whatever this says when the output needs everything.
   */
  socketVerdicts?: boolean;
  /** Payload caps by protocol and message kind (default DEFAULT_CAPTURE_SIZES; `--capture-sizes`). */
  captureSizes?: CaptureSizes;
}

const HTTP_PROTOCOLS = new Set(['http1', 'http2', 'grpc']);

export class AgentPipeline implements CaptureSink {
  private verdicts: SocketVerdicts | undefined;

  /**
   * Payloads may be views into the ring (no copy per message) when the output drops them: the
   * parsers and HTTP hooks read them during onMessage only, and copy what they keep.
   */
  get payloadViews(): boolean {
    return this.options.output.dropsPayload === true;
  }

  constructor(private readonly options: AgentPipelineOptions) {}

  /** Called by Capture.start with the loaded program when it takes verdicts. */
  useVerdicts(target: VerdictTarget): void {
    if (this.options.socketVerdicts === false || this.options.output.needsEverything === true) return;
    this.verdicts = new SocketVerdicts(target, { sizes: this.options.captureSizes });
  }

  onMessage(m: CapturedMessage, proc: ProcessInfo | undefined): void {
    const l7 = this.options.registry.parse(m);
    if (m.tls) for (const msg of l7) msg.tls = true;
    const hooks = this.options.httpHooks?.();
    const hooksLive = hooks !== undefined && hooks.length > 0;
    if (hooksLive) {
      for (const msg of l7) {
        if (HTTP_PROTOCOLS.has(msg.l7Protocol)) runHttpHooks(hooks, msg, m.payload, this.hookContext(m));
      }
    }
    // TLS plaintext is joined in user space from uprobe records: the socket's kernel verdict would
    // apply to its ciphertext, which the joiner needs whole.
    if (this.verdicts !== undefined && m.payload.length > 0 && m.tls !== true) this.decide(m, l7, hooksLive);
    this.options.output.message(m, l7, proc);
  }

  private decide(m: CapturedMessage, l7: L7Message[], hooksLive: boolean): void {
    const v = this.verdicts!;
    if (l7.length > 0) {
      const first = l7[0];
      if (first.msgType !== 'request' && first.msgType !== 'response') return;
      const requestDir = first.msgType === 'request' ? m.direction : m.direction === 'egress' ? 'ingress' : 'egress';
      v.recognised(m.socketId, first.l7Protocol, requestDir, hooksLive);
    } else if (this.options.registry.gaveUpOn(m.socketId)) {
      v.unparseable(m.socketId);
    }
  }

  onSocketClosed(e: SocketClosed): void {
    this.options.registry.onSocketClosed(e.socketId);
    this.verdicts?.closed(e.socketId);
    this.options.output.socketClosed(e);
  }

  private hookContext(m: CapturedMessage): ParseContext {
    return {
      direction: m.direction,
      role: m.role,
      l4: m.l4,
      localPort: m.localPort,
      remotePort: m.remotePort,
      socketId: m.socketId,
      bytes: m.bytes,
      state: {},
      extraHeaders: this.options.extraHeaders,
    };
  }
}
