/**
 * User-space cost of the agent per message, without the kernel: synthetic ring records (HTTP
 * request/response heads, as nginx traffic produces) go through each stage in turn — decode,
 * + parse, + batch and ship (the deployed path: AgentPipeline → shipper → a local folder store),
 * and the --output NDJSON path for comparison. CPU time of this process per message, one core.
 *   npx tsx test/bench/capture-decode.ts [--messages 1000000] [--baseline DIR]
 *
 * --baseline DIR: also run every stage with the agent code of another checkout (for example
 * `git archive <commit> agent | tar -x -C DIR`), alternating with this one in the same process,
 * so a before/after comparison sees the same machine load.
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
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const { values } = parseArgs({ options: { messages: { type: 'string', default: '1000000' }, baseline: { type: 'string' } } });
const N = Number(values.messages);

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
  };
}
const sides: Array<[string, Awaited<ReturnType<typeof agentCode>>]> = [['', await agentCode(resolve(import.meta.dirname, '../..'))]];
if (values.baseline) sides.unshift(['baseline: ', await agentCode(resolve(values.baseline))]);

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

function run(code: Code, label: string, each: (m: CapturedMessage) => void): void {
  const dec = new code.RecordDecoder();
  let sink = 0;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const [o, l] = records[i & 4095];
    const r = dec.decode(view, ring, o, l);
    if (r.kind === 'data') each(r.message);
    sink++;
  }
  const wall = Number(process.hrtime.bigint() - t0);
  const c = process.cpuUsage(cpu0);
  // CPU time of all threads (compression runs on libuv's pool), and wall time of the loop.
  const ns = (c.user + c.system) * 1000;
  console.log(`${label.padEnd(44)} ${(ns / N).toFixed(0).padStart(6)} ns CPU/message (${(wall / N).toFixed(0).padStart(6)} ns wall)  ${((N / ns) * 1e6).toFixed(0).padStart(6)}k messages/s per core  (${sink})`);
}

console.log(`capture user-space cost, ${N} synthetic HTTP messages (${heads[0].length}/${heads[1].length}-byte heads)`);
for (const [who, code] of sides) run(code, `${who}decode only`, () => {});
for (const [who, code] of sides) {
  const registry = code.createDefaultRegistry();
  let parsed = 0;
  run(code, `${who}decode + parse`, (m) => (parsed += registry.parse(m).length));
}

// The deployed path. Batches are cut by the clock; the store is a temp folder.
for (const [who, code] of sides) {
  const dir = mkdtempSync(join(tmpdir(), 'rt-bench-pipe-'));
  const shipper = await code.createShipper({ store: code.openStore(pathToFileURL(join(dir, 'store')).href), dataDir: dir, agentId: 'bench', slotSeconds: 1, maxMemoryBytes: 1 << 30 });
  const pipeline = new code.AgentPipeline({ registry: code.createDefaultRegistry(), output: code.shipperOutput(shipper) });
  run(code, `${who}decode + parse + batch + ship`, (m) => pipeline.onMessage(m, undefined));
  const cpu0 = process.cpuUsage();
  await shipper.close();
  const tail = process.cpuUsage(cpu0);
  console.log(`  (+ ${(((tail.user + tail.system) * 1000) / N).toFixed(0)} ns/message to encode and upload what was still open at close)`);
}

for (const [who, code] of sides) {
  let bytes = 0;
  run(code, `${who}decode + --output JSON line`, (m) => (bytes += code.messageToJson(m, undefined).length));
}
