/**
 * Protocol parser throughput: captured messages per second on one core (this process is
 * single-threaded), per protocol, through the real registry path (inference, per-socket state,
 * parse, close).
 *
 *   npx tsx test/bench/parsers.bench.ts [--seconds 1] [--rounds 3] [--limit 1024] [--protocols http1,amqp,memcached,nats,tls,…] [--compare-without nats,tls,…]
 *
 * Each figure is the best of `rounds` timed runs: on a shared box the best run is the one least
 * disturbed by other jobs.
 *
 * --compare-main http1 runs main's copy of a parser (test/bench/baseline/) against ours instead,
 * alternating runs, per CPU second.
 *
 * Workload: the recorded fixtures of each protocol (test/fixtures/protocols), every read one
 * captured message cut at the capture limit, each conversation replayed on a fresh socket id and
 * closed after — so the figures include inference of every new connection, the costly case.
 * "keep-alive" replays each conversation again and again on the same, already-recognised socket
 * (long-lived connections: inference done once, parser state carried over).
 */
import type { CapturedMessage } from '../../agent/capture/message.ts';
import { loadFixtures } from '../../agent/protocols/fixtures.ts';
import { ProtocolRegistry } from '../../agent/protocols/registry.ts';
import { BUILTIN_PARSERS } from '../../agent/protocols/builtins.ts';
import type { ProtocolParser } from '../../agent/protocols/parser.ts';
import { MetricsRegistry } from '../../agent/metrics.ts';
import { http1Parser as http1Main } from './baseline/http1-main.ts';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}
const SECONDS = arg('seconds', 1);
const ROUNDS = arg('rounds', 3);
const LIMIT = arg('limit', 1024);

function captured(socketId: number, dir: 'c2s' | 's2c', data: Uint8Array, l4: 'tcp' | 'udp'): CapturedMessage {
  return {
    tsNs: 0n, enterNs: 0n, exitNs: 0n, pid: 1, tid: 1, coroutineId: 0, processName: 'bench', syscall: 'read',
    direction: dir === 'c2s' ? 'egress' : 'ingress', socketId, family: 'ipv4', l4, localIp: '127.0.0.1', localPort: 40000,
    remoteIp: '127.0.0.1', remotePort: 5000, role: 'client', tcpSeq: 0, syscallTraceId: 0, bytes: data.length,
    payload: data.length > LIMIT ? data.subarray(0, LIMIT) : data,
  };
}

interface Row {
  protocol: string;
  msgsPerSec: number;
  l7PerSec: number;
  steadyPerSec: number;
  /** Captured payload bytes per second, new connections and keep-alive. */
  mbPerSec: number;
  steadyMbPerSec: number;
}

/** CPU time of this process in ms (for A/B runs on a loaded box, where wall time measures the neighbours). */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function bench(protocol: string, builtins: readonly ProtocolParser[] = BUILTIN_PARSERS, rounds = ROUNDS, clock: () => number = () => performance.now()): Row {
  const fixtures = [...loadFixtures(protocol), ...(protocol === 'http2' ? loadFixtures('grpc') : [])];
  const reg = new ProtocolRegistry({ metrics: new MetricsRegistry(), log: () => undefined, builtins });
  const convs = fixtures.map((f) => f.chunks.map((c) => captured(0, c.dir, c.data, f.transport)));
  let socket = 1;
  let msgs = 0;
  let l7 = 0;
  let bytes = 0;
  const steadyIds = convs.map(() => 1_000_000 + socket++);
  const run = (steady: boolean): void => {
    for (let c = 0; c < convs.length; c++) {
      const conv = convs[c];
      const id = steady ? steadyIds[c] : socket++;
      for (let i = 0; i < conv.length; i++) {
        conv[i].socketId = id;
        l7 += reg.parse(conv[i]).length;
        bytes += conv[i].payload.length;
        msgs++;
      }
      if (!steady) reg.onSocketClosed(id);
    }
  };
  const measure = (steady: boolean): [number, number, number] => {
    const until = performance.now() + 300;
    while (performance.now() < until) run(steady); // warm-up
    let best: [number, number, number] = [0, 0, 0];
    for (let r = 0; r < rounds; r++) {
      msgs = l7 = bytes = 0;
      const t0 = clock();
      let t = t0;
      while (t - t0 < SECONDS * 1000) {
        run(steady);
        t = clock();
      }
      const s = (t - t0) / 1000;
      if (msgs / s > best[0]) best = [msgs / s, l7 / s, bytes / s / 1e6];
    }
    return best;
  };
  const [msgsPerSec, l7PerSec, mbPerSec] = measure(false);
  const [steadyPerSec, , steadyMbPerSec] = measure(true);
  return { protocol, msgsPerSec, l7PerSec, steadyPerSec, mbPerSec, steadyMbPerSec };
}

const only = process.argv.indexOf('--protocols');
const list = only >= 0 ? process.argv[only + 1].split(',') : ['http1', 'http2', 'dns', 'redis', 'mysql', 'postgresql', 'kafka', 'mqtt', 'memcached', 'nats', 'tls'];
const without = process.argv.indexOf('--compare-without');
if (without >= 0) {
  // Inference cost of parsers added to the list: each protocol measured with and without them,
  // alternately (A B A B) so both see the same machine load; best of each.
  const drop = new Set(process.argv[without + 1].split(','));
  const reduced = BUILTIN_PARSERS.filter((p) => !drop.has(p.name));
  const fmtN = (n: number): string => Math.round(n).toLocaleString('en');
  process.stdout.write(`New-connection msgs/s without [${[...drop].join(', ')}] (baseline) and with them, alternating runs, best of ${2 * ROUNDS} x ${SECONDS}s, node ${process.version}\n\n`);
  process.stdout.write('| protocol | baseline (without) | with | ratio |\n|---|---:|---:|---:|\n');
  for (const proto of list.filter((x) => !drop.has(x))) {
    let a = 0;
    let b = 0;
    for (let k = 0; k < 2; k++) {
      a = Math.max(a, bench(proto, reduced).msgsPerSec);
      b = Math.max(b, bench(proto).msgsPerSec);
    }
    process.stdout.write(`| ${proto} | ${fmtN(a)} | ${fmtN(b)} | ${(b / a).toFixed(2)} |\n`);
  }
  process.exit(0);
}
const compareMain = process.argv.indexOf('--compare-main');
if (compareMain >= 0) {
  // A parser against its copy from main (before a refactor), alternately (A B A B), best of each,
  // per CPU second of this process rather than per wall second.
  const baselines: Record<string, ProtocolParser> = { http1: http1Main };
  const fmtN = (n: number): string => Math.round(n).toLocaleString('en');
  process.stdout.write(`Captured msgs/s, main's parser (baseline) and ours, ${ROUNDS} alternating runs of each (A B A B …), best of each, ${SECONDS} CPU-s per run, node ${process.version}\n\n`);
  process.stdout.write('| protocol | main, new conns | ours, new conns | ratio | main, keep-alive | ours, keep-alive | ratio |\n|---|---:|---:|---:|---:|---:|---:|\n');
  for (const proto of process.argv[compareMain + 1].split(',')) {
    const base = baselines[proto];
    if (!base) throw new Error(`--compare-main: no baseline copy of ${proto} (have ${Object.keys(baselines).join(', ')})`);
    const withBase = BUILTIN_PARSERS.map((p) => (p.name === proto ? base : p));
    const a = { n: 0, k: 0 };
    const b = { n: 0, k: 0 };
    for (let k = 0; k < ROUNDS; k++) {
      const ra = bench(proto, withBase, 1, cpuMs);
      const rb = bench(proto, BUILTIN_PARSERS, 1, cpuMs);
      a.n = Math.max(a.n, ra.msgsPerSec);
      a.k = Math.max(a.k, ra.steadyPerSec);
      b.n = Math.max(b.n, rb.msgsPerSec);
      b.k = Math.max(b.k, rb.steadyPerSec);
    }
    process.stdout.write(`| ${proto} | ${fmtN(a.n)} | ${fmtN(b.n)} | ${(b.n / a.n).toFixed(2)} | ${fmtN(a.k)} | ${fmtN(b.k)} | ${(b.k / a.k).toFixed(2)} |\n`);
  }
  process.exit(0);
}
const rows = list.map((p) => bench(p));
const fmt = (n: number): string => Math.round(n).toLocaleString('en');
process.stdout.write(`Parser throughput on one core (capture limit ${LIMIT} B, best of ${ROUNDS} x ${SECONDS}s per figure, node ${process.version})\n\n`);
process.stdout.write('| protocol | captured msgs/s (new connections) | L7 msgs/s | captured msgs/s (keep-alive) | MB/s (new) | MB/s (keep-alive) |\n|---|---:|---:|---:|---:|---:|\n');
for (const r of rows) process.stdout.write(`| ${r.protocol} | ${fmt(r.msgsPerSec)} | ${fmt(r.l7PerSec)} | ${fmt(r.steadyPerSec)} | ${r.mbPerSec.toFixed(1)} | ${r.steadyMbPerSec.toFixed(1)} |\n`);
