/**
 * User-space cost of the agent per message, without the kernel: synthetic ring records (HTTP
 * request/response heads, as nginx traffic produces) go through each stage in turn — decode,
 * + parse, + batch and ship (the deployed path: AgentPipeline → shipper → a local folder store),
 * and the --output NDJSON path for comparison. CPU time of this process per message, one core.
 *   npx tsx test/bench/capture-decode.ts [--messages 1000000] [--baseline DIR] [--rounds 5]
 *
 * --baseline DIR: also run every stage with the agent code of another checkout (for example
 * `git archive <commit> agent tsconfig.json package.json | tar -x -C DIR`, node_modules linked
 * in), alternating with this one in the same process, so a before/after comparison sees the same
 * machine load. DIR must hold the checkout's tsconfig.json (see below).
 */
import { parseArgs } from 'node:util';
import { RT_EV_DATA, RtDataEvent as D } from '../../agent/capture/layout.generated.ts';
import type { CapturedMessage } from '../../agent/capture/message.ts';
import type * as Decoder from '../../agent/capture/decoder.ts';
import type * as Ndjson from '../../agent/ndjson-output.ts';
import type * as Pipeline from '../../agent/pipeline.ts';
import type * as Registry from '../../agent/protocols/registry.ts';
import type * as Shipper from '../../agent/shipping/shipper.ts';
import type * as Store from '../../agent/shipping/store.ts';
import type * as SliceClock from '../../agent/capture/slice-clock.ts';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const { values } = parseArgs({ options: { messages: { type: 'string', default: '1000000' }, baseline: { type: 'string' }, rounds: { type: 'string', default: '1' } } });
const N = Number(values.messages);
/** Rounds of every stage, the two sides alternating within each round (medians printed at the end). */
const ROUNDS = Math.max(1, Number(values.rounds));

/** The agent modules a stage needs, from this checkout or the baseline's. */
async function agentCode(root: string) {
  const at = (p: string) => pathToFileURL(join(root, 'agent', p)).href;
  return {
    RecordDecoder: (await import(at('capture/decoder.ts'))).RecordDecoder as typeof Decoder.RecordDecoder,
    messageToJson: (await import(at('ndjson-output.ts'))).messageToJson as typeof Ndjson.messageToJson,
    createDefaultRegistry: (await import(at('protocols/registry.ts'))).createDefaultRegistry as typeof Registry.createDefaultRegistry,
    ...((await import(at('pipeline.ts'))) as Pick<typeof Pipeline, 'AgentPipeline' | 'shipperOutput'>),
    createShipper: (await import(at('shipping/shipper.ts'))).createShipper as typeof Shipper.createShipper,
    openStore: (await import(at('shipping/store.ts'))).openStore as typeof Store.openStore,
    // Newer code only: the slot clock taken once per drained slice (absent in older checkouts).
    sliceClock: (await import(at('capture/slice-clock.ts')).catch(() => undefined)) as typeof SliceClock | undefined,
  };
}
const sides: Array<[string, Awaited<ReturnType<typeof agentCode>>]> = [['', await agentCode(resolve(import.meta.dirname, '../..'))]];
if (values.baseline) {
  // Without the checkout's tsconfig.json tsx compiles the baseline with other settings (class
  // fields, target) and it runs 1.5-3x slower: an A/A run of identical code showed -30 to -60%.
  if (!existsSync(join(resolve(values.baseline), 'tsconfig.json'))) throw new Error(`--baseline ${values.baseline} has no tsconfig.json: copy the checkout's (git show <commit>:tsconfig.json), or the comparison is biased`);
  sides.unshift(['baseline: ', await agentCode(resolve(values.baseline))]);
}

const heads = [
  'GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n',
  'HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 21 Nov 2026 05:00:00 GMT\r\nContent-Type: text/html\r\nContent-Length: 612\r\nConnection: keep-alive\r\n\r\n' + 'x'.repeat(612),
];

// A ring-like buffer holding 4096 records back to back, 8-byte aligned like the kernel's.
const records: Array<[number, number]> = [];
const ring = new Uint8Array(8 << 20);
const view = new DataView(ring.buffer);
let off = 0;
for (let i = 0; i < 4096; i++) {
  const payload = Buffer.from(heads[i % 2]);
  const len = D.SIZE + payload.length;
  view.setUint32(off + D.kind.offset, RT_EV_DATA, true);
  view.setUint32(off + D.pid.offset, 1000 + (i % 4), true);
  view.setUint32(off + D.tid.offset, 1000 + (i % 4), true);
  view.setUint32(off + D.payload_len.offset, payload.length, true);
  view.setBigUint64(off + D.enter_ns.offset, BigInt(1e9 + i * 1000), true);
  view.setBigUint64(off + D.exit_ns.offset, BigInt(1e9 + i * 1000 + 500), true);
  view.setBigUint64(off + D.socket_id.offset, BigInt(1 + (i % 50)), true);
  view.setBigUint64(off + D.syscall_trace_id.offset, BigInt(i), true);
  view.setBigInt64(off + D.bytes.offset, BigInt(payload.length), true);
  view.setUint32(off + D.tcp_seq.offset, i * 1000, true);
  view.setUint16(off + D.family.offset, 2, true);
  view.setUint16(off + D.local_port.offset, 8080, true);
  view.setUint16(off + D.remote_port.offset, 40000 + (i % 50), true);
  ring[off + D.l4.offset] = 6;
  ring[off + D.direction.offset] = i % 2;
  ring[off + D.role.offset] = 2;
  ring[off + D.syscall.offset] = i % 2 ? 1 : 5;
  ring.set([127, 0, 0, 1], off + D.local_addr.offset);
  ring.set([127, 0, 0, 1], off + D.remote_addr.offset);
  ring.set(Buffer.from('nginx'), off + D.comm.offset);
  ring.set(payload, off + D.SIZE);
  records.push([off, len]);
  off += (len + 7) & ~7;
}

type Code = Awaited<ReturnType<typeof agentCode>>;

/** Records per drained slice, as Capture drains them (sliceRecords). */
const SLICE = 8192;

/**
 * Decodes N records through `each`, in slices like Capture.drainOnce: code that has the slice clock
 * reads the time once per slice. `views`: payloads as views into the ring where the code can
 * (RecordDecoder.payloadViews; the consumer keeps no payload).
 */
const results = new Map<string, number[]>();

function run(code: Code, label: string, each: (m: CapturedMessage) => void, views = false): void {
  const dec = new code.RecordDecoder();
  if (views && 'payloadViews' in dec) (dec as { payloadViews: boolean }).payloadViews = true;
  const clock = code.sliceClock;
  let sink = 0;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    if (clock && i % SLICE === 0) {
      clock.endSlice();
      clock.beginSlice(Date.now());
    }
    const [o, l] = records[i & 4095];
    const r = dec.decode(view, ring, o, l);
    if (r.kind === 'data') each(r.message);
    sink++;
  }
  clock?.endSlice();
  const wall = Number(process.hrtime.bigint() - t0);
  const c = process.cpuUsage(cpu0);
  // CPU time of all threads (compression runs on libuv's pool), and wall time of the loop.
  const ns = (c.user + c.system) * 1000;
  const all = results.get(label) ?? [];
  all.push(ns / N);
  results.set(label, all);
  console.log(`${label.padEnd(44)} ${(ns / N).toFixed(0).padStart(6)} ns CPU/message (${(wall / N).toFixed(0).padStart(6)} ns wall)  ${((N / ns) * 1e6).toFixed(0).padStart(6)}k messages/s per core  (${sink})`);
}

console.log(`capture user-space cost, ${N} synthetic HTTP messages (${heads[0].length}/${heads[1].length}-byte heads), ${ROUNDS} round(s)`);
for (let round = 0; round < ROUNDS; round++) {
  // Alternate which side goes first, so neither always runs on a warmer JIT or a quieter moment.
  if (round > 0) sides.reverse();
  for (const [who, code] of sides) run(code, `${who}decode only`, () => {}, true);
  for (const [who, code] of sides) {
    const registry = code.createDefaultRegistry();
    let parsed = 0;
    run(code, `${who}decode + parse`, (m) => (parsed += registry.parse(m).length), true);
  }

  // The deployed path. Batches are cut by the clock; the store is a temp folder.
  for (const [who, code] of sides) {
    const dir = mkdtempSync(join(tmpdir(), 'rt-bench-pipe-'));
    const shipper = await code.createShipper({ store: code.openStore(pathToFileURL(join(dir, 'store')).href), dataDir: dir, agentId: 'bench', slotSeconds: 1, maxMemoryBytes: 1 << 30 });
    const pipeline = new code.AgentPipeline({ registry: code.createDefaultRegistry(), output: code.shipperOutput(shipper) });
    run(code, `${who}decode + parse + batch + ship`, (m) => pipeline.onMessage(m, undefined), (pipeline as { payloadViews?: boolean }).payloadViews === true);
    const cpu0 = process.cpuUsage();
    await shipper.close();
    const tail = process.cpuUsage(cpu0);
    console.log(`  (+ ${(((tail.user + tail.system) * 1000) / N).toFixed(0)} ns/message to encode and upload what was still open at close)`);
  }

  for (const [who, code] of sides) {
    let bytes = 0;
    run(code, `${who}decode + --output JSON line`, (m) => (bytes += code.messageToJson(m, undefined).length));
  }
}

if (ROUNDS > 1) {
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(`\nmedians of ${ROUNDS} rounds (ns CPU per message)`);
  for (const [label, xs] of results) {
    if (label.startsWith('baseline: ')) continue;
    const base = results.get(`baseline: ${label}`);
    const now = median(xs);
    if (base === undefined) console.log(`${label.padEnd(36)} ${now.toFixed(0).padStart(6)}`);
    else console.log(`${label.padEnd(36)} baseline ${median(base).toFixed(0).padStart(6)}  now ${now.toFixed(0).padStart(6)}  (${((now / median(base) - 1) * 100).toFixed(1)}%)`);
  }
}
