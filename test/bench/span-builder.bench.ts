/**
 * Span builder throughput: messages per second on one core (this process is single-threaded).
 *
 *   npx tsx test/bench/span-builder.bench.ts [--messages 600000] [--sockets 4000] [--rounds 5] [--owner-only] [--compare] [--reference] [--main] [--sql]
 *
 * --compare also runs the pre-rewrite builder (test/functions/span-builder.reference.ts) on the same
 * windows, alternating round by round in this process, so before/after share one load; it checks
 * that both give identical rows. --main does the same with main's builder before the always-one-way
 * rules (test/bench/baseline/span-builder-main.ts). --sql makes the Redis sockets PostgreSQL ones
 * (a protocol with always-one-way rules, so each request is also looked up among them).
 *
 * Synthetic traffic over three consecutive slots of one agent: keep-alive HTTP/1 client and server
 * sockets (some pipelined), Redis, and DNS over UDP answered by id; ~2% of requests cross a slot
 * boundary and 0.5% are never answered. Each round builds the middle slot's window (all three slots
 * as input) and counts the owner slot's messages — the work a function does per batch.
 */
import { SpanBuilder } from '../../functions/span-builder/span-builder.ts';
import { ReferenceSpanBuilder } from '../functions/span-builder.reference.ts';
import { SpanBuilder as MainSpanBuilder } from './baseline/span-builder-main.ts';
import type { Batch, ParsedMessage } from '../../agent/shipping/batch.ts';
import type { L7Message } from '../../agent/protocols/parser.ts';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

const MESSAGES = arg('messages', 600_000); // over 3 slots
const SOCKETS = arg('sockets', 4000);
const ROUNDS = arg('rounds', 5);
const SQL = process.argv.includes('--sql');
const SLOT_S = 5;
const SLOT = 340_000_000;
const base = BigInt(SLOT - 1) * BigInt(SLOT_S) * 1_000_000_000n;
const empty = new Uint8Array(0);

let seed = 42;
const rnd = (): number => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed / 0x7fffffff;
};

function make(): Batch[] {
  const slots: ParsedMessage[][] = [[], [], []];
  const spanNs = 3 * SLOT_S * 1e9;
  const perSocket = Math.floor(MESSAGES / SOCKETS / 2);
  for (let s = 0; s < SOCKETS; s++) {
    const kind = s % 10 < 6 ? 'http1' : s % 10 < 9 ? (SQL ? 'postgresql' : 'redis') : 'dns';
    const server = s % 2 === 1;
    const pid = 1000 + (s % 50);
    let t = rnd() * (spanNs / perSocket);
    const step = spanNs / perSocket;
    const common = { pid, tid: pid + 1, coroutineId: 0, processName: `proc${s % 50}`, family: 'ipv4' as const, l4: kind === 'dns' ? ('udp' as const) : ('tcp' as const), socketId: 1_000_000 + s, localIp: '10.0.0.1', localPort: server ? 8080 : 40000 + s, remoteIp: '10.0.1.2', remotePort: server ? 50000 + s : 8080, role: (server ? 'server' : 'client') as 'server' | 'client', syscallTraceId: s, bytes: 300, payload: empty };
    for (let i = 0; i < perSocket; i++) {
      const reqTs = base + BigInt(Math.floor(t));
      const latency = rnd() < 0.02 ? 400_000_000 : 200_000 + rnd() * 2_000_000;
      const respTs = reqTs + BigInt(Math.floor(latency));
      let req: L7Message;
      let resp: L7Message;
      if (kind === 'http1') {
        req = { l7Protocol: 'http1', msgType: 'request', requestType: 'GET', requestDomain: 'svc', requestResource: '/api/v1/items', endpoint: '/api/v1/items', traceId: '0af7651916cd43dd8448eb211c80319c', xRequestId: 'r' };
        resp = { l7Protocol: 'http1', msgType: 'response', responseCode: 200, responseStatus: 'ok' };
      } else if (kind === 'redis') {
        req = { l7Protocol: 'redis', msgType: 'request', requestType: 'GET', requestResource: 'GET cart:1' };
        resp = { l7Protocol: 'redis', msgType: 'response', responseStatus: 'ok' };
      } else if (kind === 'postgresql') {
        req = { l7Protocol: 'postgresql', msgType: 'request', requestType: 'QUERY', requestResource: 'SELECT * FROM cart WHERE id = $1' };
        resp = { l7Protocol: 'postgresql', msgType: 'response', responseStatus: 'ok' };
      } else {
        req = { l7Protocol: 'dns', msgType: 'request', requestId: i & 0xffff, requestType: 'A', requestResource: 'db.local' };
        resp = { l7Protocol: 'dns', msgType: 'response', requestId: i & 0xffff, responseCode: 0, responseStatus: 'ok' };
      }
      const reqDir = server ? 'ingress' : 'egress';
      const respDir = server ? 'egress' : 'ingress';
      const push = (ts: bigint, dir: 'egress' | 'ingress', l7: L7Message[], seq: number) => {
        const slot = Number((ts - base) / BigInt(SLOT_S * 1e9));
        if (slot < 0 || slot > 2) return;
        // A full literal, as the batch decoder builds them (spreads can leave objects in slow mode).
        const c = common;
        slots[slot].push({
          tsNs: ts, enterNs: ts, exitNs: ts + 1000n, pid: c.pid, tid: c.tid, coroutineId: 0, processName: c.processName,
          syscall: dir === 'egress' ? 'write' : 'read', direction: dir, socketId: c.socketId, family: c.family, l4: c.l4,
          localIp: c.localIp, localPort: c.localPort, remoteIp: c.remoteIp, remotePort: c.remotePort, role: c.role,
          tcpSeq: seq, syscallTraceId: c.syscallTraceId, bytes: c.bytes, payload: c.payload, l7,
        });
      };
      push(reqTs, reqDir, [req], i * 300);
      if (rnd() > 0.005) push(respTs, respDir, [resp], i * 500);
      t += step;
    }
  }
  return slots.map((messages, k) => {
    messages.sort((a, b) => (a.tsNs < b.tsNs ? -1 : a.tsNs > b.tsNs ? 1 : 0));
    return { version: 1, agentId: 'bench', host: 'bench', slot: SLOT - 1 + k, slotSeconds: SLOT_S, part: 0, messages, processes: [], closed: [] };
  });
}

const batches = make();
const owner = batches[1].messages.length;
const COMPARE = process.argv.includes('--compare');
// --owner-only: build the owner slot without neighbours (to see what the neighbours cost).
if (process.argv.includes('--owner-only')) {
  batches[0] = { ...batches[0], messages: [] };
  batches[2] = { ...batches[2], messages: [] };
}
interface Builder {
  build: SpanBuilder['build'];
}
// --reference: only the pre-rewrite builder (e.g. to count instructions of each under callgrind).
const builders: [string, Builder][] = process.argv.includes('--reference') ? [] : [['span builder', new SpanBuilder()]];
if (COMPARE || process.argv.includes('--reference')) builders.push(['reference (before)', new ReferenceSpanBuilder()]);
if (process.argv.includes('--main')) builders.push(['main', new MainSpanBuilder()]);
const window = { agentId: 'bench', slot: SLOT, prev: [batches[0]], cur: [batches[1]], next: [batches[2]] };
// Warm up the JIT (and check the two builders agree).
const warm = builders.map(([, b]) => JSON.stringify(b.build(window)));
for (let k = 1; k < warm.length; k++) if (warm[k] !== warm[0]) throw new Error(`${builders[0][0]} and ${builders[k][0]} disagree`);
const neighbour = batches[0].messages.length + batches[2].messages.length;
const rates: number[][] = builders.map(() => []);
const visits: number[][] = builders.map(() => []);
let spans = 0;
for (let r = 0; r < ROUNDS; r++) {
  for (const [k, [name, builder]] of builders.entries()) {
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    const res = builder.build(window);
    const cpu = process.cpuUsage(c0);
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    spans = res.spans.length;
    const s = (cpu.user + cpu.system) / 1e6;
    rates[k].push(owner / s);
    visits[k].push((owner + neighbour) / s);
    process.stdout.write(`${name} round ${r + 1}: ${owner} owner-slot messages (+${neighbour} neighbour) -> ${spans} spans in ${wall.toFixed(3)} s wall, ${s.toFixed(3)} s CPU\n`);
  }
}
const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const [k, [name]] of builders.entries()) {
  process.stdout.write(`${name}: median ${Math.round(med(rates[k])).toLocaleString('en-US')} owner-slot messages/s per core (target 500,000) over ${ROUNDS} rounds (best round ${Math.round(Math.max(...rates[k])).toLocaleString('en-US')}); ${spans} spans per round\n`);
  process.stdout.write(`${' '.repeat(name.length)}  (${Math.round(med(visits[k])).toLocaleString('en-US')} messages/s counting the neighbour slots each window also reads)\n`);
}
