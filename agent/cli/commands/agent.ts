import { Lifecycle } from '../../../lib/lifecycle.ts';
import type { Command } from '../command.ts';
import { DeniedError, FatalError, ListenError, UsageError, firstLine } from '../command.ts';
import { redact } from '../redact.ts';
import type { OptionSpec } from '../config.ts';
import { commonOptions, loadConfig, renderHelp, storeUrl } from '../config.ts';
import { createWriteStream, openSync } from 'node:fs';
import { resolve } from 'node:path';
import { Capture } from '../../capture/capture.ts';
import type { CaptureSink } from '../../capture/capture.ts';
import { NetCapture } from '../../capture/net-capture.ts';
import type { InterfacePattern } from '../../capture/net-interfaces.ts';
import { DEFAULT_NET_INTERFACES, NO_NET_INTERFACES, parseInterfacePattern } from '../../capture/net-interfaces.ts';
import { runPreflight } from '../../capture/preflight.ts';
import { LineWriter } from '../../ndjson-output.ts';
import type { PipelineOutput } from '../../pipeline.ts';
import { AgentPipeline, ndjsonOutput, shipperOutput } from '../../pipeline.ts';
import { loadPlugins } from '../../plugins/host.ts';
import { resolveAgentPlugins } from '../../plugins/marketplace-client.ts';
import { createDefaultRegistry } from '../../protocols/registry.ts';
import type { Shipper } from '../../shipping/shipper.ts';
import { createShipper } from '../../shipping/shipper.ts';
import { openStore } from '../../shipping/store.ts';
import { startStatusServer } from '../../status-server.ts';
import { parseCaptureSizes } from '../../capture/verdicts.ts';

const options: OptionSpec[] = [
  // The agent never talks to ClickHouse: it lists the common options it uses.
  ...commonOptions.filter((o) => o.name !== 'clickhouse-url').map((o) => (o.name === 'port' ? { ...o, default: 8687, help: 'HTTP port for /healthz and /metrics (0 picks a free port)' } : o)),
  { name: 'bind', type: 'string', help: 'Address the /healthz and /metrics server listens on (0.0.0.0 to be scraped from outside)', default: '127.0.0.1' },
  { name: 'output', short: 'o', type: 'string', help: 'Write every captured message as one JSON line to this file; "-" is stdout (debugging: nothing is shipped)' },
  { name: 'capture-bytes', type: 'number', help: 'Payload bytes captured per message (max 8192)', default: 1024 },
  { name: 'capture-sizes', type: 'string', help: 'Payload caps by recognised protocol, protocol.request|response=bytes (comma-separated; "none" for no caps): the kernel copies at most that much for sockets it was told carry the protocol. Default http1.response=512 (status line and headers; lifted while HTTP hook plugins are loaded)' },
  { name: 'socket-verdicts', type: 'boolean', help: 'Tell the kernel per socket what to send: sockets nothing parses are counted, not copied (riptide_capture_not_sent_total), recognised ones get --capture-sizes. Off with --output and --ship-payload', default: true },
  { name: 'ring-mb', type: 'number', help: 'BPF ring buffer size in MiB (power of two)', default: 8 },
  { name: 'exit-with-parent', type: 'boolean', help: 'Stop (detaching every program) when the process that started the agent exits, even by SIGKILL: for supervisors such as riptide up and test harnesses, so an agent never outlives them attached to the host' },
  { name: 'handoff', type: 'boolean', help: 'Track hand-offs between threads (sched_waking): a thread that wakes another right after reading a request passes it that request, and a worker that wakes a waiting reader right after reading its last reply passes it its own id, which the reader\'s answer carries (thread pools, futures; docs/TRACE-ASSEMBLY.md, rules handback and handoff). Off by default: it runs on every wake-up of the host (docs/BENCHMARKS.md)' },
  { name: 'handoff-window-ms', type: 'number', help: 'With --handoff: how recent the waker\'s request must be', default: 50 },
  { name: 'filter-pid', type: 'list', help: 'Only capture these process ids (comma-separated; filters are OR-ed)' },
  { name: 'filter-port', type: 'list', help: 'Only capture sockets with these local or remote ports' },
  { name: 'filter-comm', type: 'list', help: 'Only capture processes with these names (/proc/pid/comm)' },
  { name: 'goroutines', type: 'boolean', help: 'Read goroutine ids of Go processes, so their syscall-trace ids follow goroutines, not threads (--no-goroutines: threads only)', default: true },
  { name: 'exclude-pid', type: 'list', help: 'Never capture these process ids (the agent itself is always excluded)' },
  { name: 'max-output-mb', type: 'number', help: 'Pending --output bytes held in memory before lines are dropped (counted)', default: 64 },
  { name: 'extra-headers', type: 'list', help: 'HTTP headers to record as attributes (comma-separated names)' },
  { name: 'plugin', type: 'list', help: 'Wasm plugins to load: a manifest, a folder with manifest.json, a plugin source folder, or name@range from --marketplace (hot-reloaded)' },
  { name: 'marketplace', type: 'string', help: 'Plugin marketplace base URL for name@range plugins (e.g. http://query:8686)' },
  { name: 'trusted-key', type: 'list', help: 'Publisher public keys whose marketplace plugins this agent loads (files or base64)' },
  { name: 'marketplace-poll-seconds', type: 'number', help: 'How often to look for newer versions matching name@range plugins', default: 60 },
  { name: 'net-interfaces', type: 'string', help: 'Network spans at these interfaces (TC ingress/egress: one span per request per interface, linked to the process spans by TCP sequence) and TCP health (retransmits, failed connects, RTT) on spans: comma-separated names or globs, "veth" for every host-side end of a veth pair (a veth whose peer is in another namespace and that has no address: a pod\'s interface on its node), "!name" to leave one out; physical NICs only when named; "none" for no network capture (no TCP health either). The agent\'s filters apply: --filter-port in the kernel, pid/name filters keep the connections of those processes (docs/ARCHITECTURE.md)', default: DEFAULT_NET_INTERFACES },
  { name: 'tls', type: 'boolean', help: 'Capture the plaintext of OpenSSL connections (libssl, node) and Go crypto/tls through uprobes (docs/TLS.md). Off by default: every SSL_read/SSL_write (Go: Conn.Read/Write) of every process using an attached library then takes uprobe traps, measured at +52 µs per call and 23% of HTTPS nginx throughput on our VM (docs/BENCHMARKS.md)' },
  { name: 'ship-payload', type: 'boolean', help: 'Also ship the captured payload heads (off: only parsed fields leave the node)' },
  { name: 'agent-id', type: 'string', help: 'Id of this agent in object keys (default: the host name)' },
  { name: 'slot-seconds', type: 'number', help: 'Batch time slot length in seconds', default: 2 },
  { name: 'spool-mb', type: 'number', help: 'Disk spool cap in MiB (store outages lose nothing until it is full)', default: 1024 },
  { name: 'memory-mb', type: 'number', help: 'Memory for open batches in MiB (past it messages are dropped and counted)', default: 64 },
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
    '  riptide agent --net-interfaces veth,eth0           # network spans at pod veths and at eth0 too',
    '  riptide agent --net-interfaces none                # process spans only: no TC programs, no TCP health',
    '  riptide agent --store s3://traces/riptide --s3-endpoint http://127.0.0.1:9000',
    '  riptide agent --plugin plugins/biz-trace-id          # ships to <data-dir>/store by default',
    '  riptide agent --plugin tinyrpc@^1 --marketplace http://query:8686 --trusted-key publisher.pub',
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
/**
 * RIPTIDE_CPU_PROFILE=<file>: a CPU profile of the running agent, started once BPF is loaded
 * (node --cpu-prof's SIGPROF during verification makes the kernel refuse the load with EAGAIN).
 */
async function startProfileIfAsked(): Promise<(() => Promise<void>) | undefined> {
  const file = process.env.RIPTIDE_CPU_PROFILE;
  if (!file) return undefined;
  const { Session } = await import('node:inspector/promises');
  const { writeFileSync } = await import('node:fs');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 500 });
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(file, JSON.stringify(profile));
    session.disconnect();
  };
}

const command: Command = {
  name: 'agent',
  summary: 'Capture network syscalls with eBPF',
  help,
  async run(argv) {
    const cfg = loadConfig(argv, options);
    if (cfg.positionals.length) throw new UsageError(`unexpected argument "${cfg.positionals[0]}"`);
    const output = cfg.string('output');
    const dataDir = resolve(cfg.string('data-dir') ?? '.riptide');
    const ringMb = cfg.number('ring-mb') ?? 8;
    const window = cfg.number('handoff-window-ms') ?? 50;
    if (!(window > 0 && window <= 60_000)) throw new UsageError(`--handoff-window-ms must be between 0 and 60000, got ${window}`);
    const filter = {
      pids: parseNumbers(cfg.list('filter-pid'), 'filter-pid'),
      ports: parseNumbers(cfg.list('filter-port'), 'filter-port'),
      comms: cfg.list('filter-comm'),
      excludePids: parseNumbers(cfg.list('exclude-pid'), 'exclude-pid'),
    };
    const extraHeaders = cfg.list('extra-headers').map((h) => h.toLowerCase());

    netInterfaces(cfg); // a bad pattern is a usage error before anything is built
    const pre = runPreflight();
    if (!pre.ok) throw new DeniedError(`cannot capture: ${pre.problem}`);
    return runAgent(cfg, filter, extraHeaders, output, dataDir, ringMb);
  },
};

/** The --net-interfaces pattern (default `veth`), undefined when network capture is off (`none`). */
function netInterfaces(cfg: ReturnType<typeof loadConfig>): InterfacePattern | undefined {
  const p = cfg.string('net-interfaces') ?? DEFAULT_NET_INTERFACES;
  if (p.trim() === NO_NET_INTERFACES) return undefined;
  try {
    return parseInterfacePattern(p);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** The start-up line's network part: where spans are taken now, and that TCP health is on. */
function describeNet(net: NetCapture, pattern: string): string {
  if (net.tcRefused !== undefined) return 'no network spans (TC refused), TCP health on';
  const names = [...net.interfaces.values()];
  const where = names.length ? ` (${names.join(',')}${net.mode ? `, ${net.mode}` : ''})` : ` (none matches "${pattern}" yet; rescanned every 3 s)`;
  return `network spans at ${names.length} interface(s)${where}, TCP health on`;
}

/** The running capture, once there is one (read by the status server's checks). */
interface LiveCapture {
  capture?: Capture;
}

interface Filter {
  pids: number[];
  ports: number[];
  comms: string[];
  excludePids: number[];
}

/**
 * Two phases (lib/lifecycle.ts): build the output (NDJSON writer or shipper with its spool), the
 * plugins and the pipeline; then start the status server (a busy port fails before any BPF is
 * loaded), capture, the profiler and the signal handlers. A step that fails stops and closes every
 * part before it, so a failed start leaves no timer, watcher or attached program behind.
 */
async function runAgent(cfg: ReturnType<typeof loadConfig>, filter: Filter, extraHeaders: string[], output: string | undefined, dataDir: string, ringMb: number): Promise<number> {
  // Resolves when the agent should stop: a signal, or the --output reader going away.
  let stop: (why: 'signal' | 'output-closed' | Error) => void = () => undefined;
  const stopped = new Promise<'signal' | 'output-closed' | Error>((res) => (stop = res));
  const life = new Lifecycle();

  // Phase 1, build. The output: NDJSON lines for debugging, or batches to the object store.
  let pipelineOutput: PipelineOutput;
  let destination: string;
  let writer: LineWriter | undefined;
  if (output) {
    const stream = await life
      .build(
        'output file',
        (): NodeJS.WritableStream => (output === '-' ? process.stdout : createWriteStream('', { fd: openSync(output, 'a') })),
        (st) => (st === process.stdout ? undefined : new Promise<void>((r) => st.end(r))),
      )
      .catch((err: unknown) => {
        throw new UsageError(`cannot write --output ${output}: ${firstLine(err)}`);
      });
    // EPIPE (`--output - | head -1`) ends capture quietly with status 0; other write errors fail.
    const w = new LineWriter(stream, (cfg.number('max-output-mb') ?? 64) << 20, (err) =>
      stop(err.code === 'EPIPE' ? 'output-closed' : new FatalError(`cannot write --output ${output}: ${firstLine(err)}`)),
    );
    writer = w;
    pipelineOutput = ndjsonOutput(w);
    destination = `output to ${output === '-' ? 'stdout' : output}`;
  } else {
    const url = storeUrl(cfg.string('store'), dataDir);
    const store = await life.build('object store', () => openStore(url, { s3Endpoint: cfg.string('s3-endpoint') })).catch((err: unknown) => {
      throw new UsageError((err as Error).message);
    });
    const shipper: Shipper = await life
      .build(
        'shipper',
        () =>
          createShipper({
            store,
            dataDir,
            agentId: cfg.string('agent-id'),
            slotSeconds: cfg.number('slot-seconds'),
            spoolMaxBytes: Math.round((cfg.number('spool-mb') ?? 1024) * 1024 * 1024),
            maxMemoryBytes: Math.round((cfg.number('memory-mb') ?? 64) * 1024 * 1024),
          }),
        (sh) => sh.close(),
      )
      .catch((err: unknown) => {
        throw new UsageError(`cannot ship: ${(err as Error).message}`);
      });
    pipelineOutput = shipperOutput(shipper, { keepPayload: cfg.bool('ship-payload') });
    destination = `shipping to ${redact(url)}`;
  }

  const market = await life
    .build(
      'marketplace plugins',
      () => resolveAgentPlugins({ entries: cfg.list('plugin'), marketplace: cfg.string('marketplace'), trustedKeys: cfg.list('trusted-key'), dataDir, pollSeconds: cfg.number('marketplace-poll-seconds') ?? 60 }),
      (m) => m.watcher?.close(),
    )
    .catch((err: unknown) => {
      throw new UsageError((err as Error).message);
    });
  const plugins = market.paths.length ? await life.build('plugins', () => loadPlugins({ paths: market.paths }), (p) => p.close()) : undefined;
  const registry = createDefaultRegistry({ extraHeaders });
  if (plugins) {
    const sync = (): void => plugins.parsers.forEach((p) => registry.register(p));
    sync();
    plugins.host.onChange(sync);
  }
  const pipeline = new AgentPipeline({ registry, output: pipelineOutput, extraHeaders, httpHooks: () => plugins?.httpHooks ?? [], socketVerdicts: cfg.bool('socket-verdicts'), captureSizes: parseCaptureSizes(cfg.string('capture-sizes')) });

  // Phase 2, start. The status server first: a busy port fails in milliseconds, before any BPF is
  // loaded. Live while starting and while the ring keeps being drained (a hung agent answers 503, or
  // not at all); ready only once capture is live.
  const port = cfg.number('port') ?? 8687;
  const bind = cfg.string('bind') ?? '127.0.0.1';
  const live: LiveCapture = {};
  const checks = {
    health: () => live.capture?.liveness() ?? null,
    ready: () => (live.capture ? [live.capture.liveness()].filter((r): r is string => r !== null) : ['capture starting']),
  };
  const status = await life.start('status server', () => startStatusServer(port, bind, checks), (st) => st.close()).catch((err: unknown) => {
    const hint = (err as NodeJS.ErrnoException).code === 'EADDRINUSE' ? ' (pick another --port, or 0 for a free one)' : '';
    throw new ListenError(`cannot listen on ${bind}:${port} for /metrics: ${firstLine(err)}${hint}`);
  });
  if (writer) {
    const w = writer;
    await life.start('output flush', () => setInterval(() => w.flush(), 20), (t) => {
      clearInterval(t);
      w.flush();
    });
  }
  // Network observation points (issue 19): their own object and ring, started before syscall
  // capture so that the process messages can carry TCP health from the first one.
  const pattern = netInterfaces(cfg);
  let net: NetCapture | undefined;
  if (pattern !== undefined) {
    // A kernel that refuses the network programs costs network spans, not syscall capture.
    net = await life.start(
      'network capture',
      () => {
        try {
          // Its own pipeline (same parsers and output): never given kernel socket verdicts, which
          // are about syscall sockets, not network flows.
          const netPipeline = new AgentPipeline({ registry, output: pipelineOutput, extraHeaders, httpHooks: () => plugins?.httpHooks ?? [] });
          return NetCapture.start({ pattern, ports: filter.ports, processFilter: filter.pids.length > 0 || filter.comms.length > 0 }, { onMessage: (m) => netPipeline.onMessage(m, undefined), onParsed: (m, l7) => pipelineOutput.message(m, l7, undefined), onSocketClosed: (e) => netPipeline.onSocketClosed(e) });
        } catch (err) {
          process.stderr.write(`riptide agent: no network spans: ${firstLine(err)}\n`);
          return undefined;
        }
      },
      (n) => n?.stop(),
    );
  }
  const netSink = net;
  // With network capture, process messages pick up their connection's TCP health on the way in.
  const sink: CaptureSink = netSink
    ? {
        get payloadViews() {
          return pipeline.payloadViews;
        },
        useVerdicts: (t) => pipeline.useVerdicts(t),
        onMessage: (m, p) => {
          netSink.annotate(m);
          pipeline.onMessage(m, p);
        },
        onSocketClosed: (e) => pipeline.onSocketClosed(e),
      }
    : pipeline;
  const capture = await life
    .start('capture', () => Capture.start({ captureLimit: cfg.number('capture-bytes'), ringBytes: Math.round(ringMb * 1024 * 1024), filter, handoff: cfg.bool('handoff'), handoffWindowMs: cfg.number('handoff-window-ms'), tls: cfg.bool('tls') ? true : undefined, goroutines: cfg.bool('goroutines'), verdicts: cfg.bool('socket-verdicts') && !cfg.string('output') && !cfg.bool('ship-payload') }, sink), (c) => c.stop())
    .catch((err: unknown) => {
      throw new FatalError(`cannot capture: ${(err as Error).message}`);
    });
  live.capture = capture;
  await life.start('CPU profile', () => startProfileIfAsked(), (finish) => finish?.());
  const onSignal = (): void => stop('signal');
  await life.start('signal handlers', () => {
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  }, () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  });
  if (cfg.bool('exit-with-parent')) {
    // Linux re-parents an orphan (to init or a subreaper): a changed ppid means the parent is gone.
    const parent = process.ppid;
    await life.start('parent watch', () => setInterval(() => process.ppid !== parent && stop('signal'), 500), (t) => clearInterval(t));
  }
  const filters = [
    filter.pids.length ? `pids ${filter.pids.join(',')}` : '',
    filter.ports.length ? `ports ${filter.ports.join(',')}` : '',
    filter.comms.length ? `names ${filter.comms.join(',')}` : '',
  ].filter(Boolean);
  process.stderr.write(
    `riptide agent: capturing on ${capture.attachedPrograms} tracepoints${filters.length ? ` (${filters.join(' or ')})` : ' (all processes)'}; ` +
      (net ? `${describeNet(net, cfg.string('net-interfaces') ?? DEFAULT_NET_INTERFACES)}; ` : '') +
      `metrics on http://${bind}:${status.port}/metrics; ${destination}${plugins ? `; ${plugins.parsers.length + plugins.httpHooks.length} plugin hook(s)` : ''}\n`,
  );

  const why = await stopped;
  // Latest first: signal handlers, profile, capture (BPF detached), flush, status server, plugins, output.
  await life.close();
  if (why instanceof Error) throw why;
  if (why === 'signal') process.stderr.write('riptide agent: stopped; all BPF programs detached\n');
  return 0;
}

export default command;
