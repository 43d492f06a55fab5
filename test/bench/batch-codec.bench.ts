/**
 * Batch encoding: bytes per message and encode/decode cost per message for our format (RTB) against
 * plain NDJSON and gzip NDJSON, side by side in one run, on synthetic but realistic traffic
 * (HTTP/1.1 and Redis payload heads of 200–1024 bytes, 40 sockets, 5 processes).
 *
 *   npx tsx test/bench/batch-codec.bench.ts [messagesPerBatch=2000] [rounds=9]
 *
 * "RTB main …" rows are the codec as it was before its split into agent/shipping/codec/ (a copy in
 * test/bench/baseline/, format 3), run in the same rounds; the bench fails unless our format 3 body
 * is main's byte for byte and our format 4 body is that plus the descriptor section.
 *
 * Each figure is the median over `rounds` runs of one batch, in CPU time (not wall time: the bench
 * machines are shared). Results go to stdout as a Markdown table.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { cpus } from 'node:os';
import type { Batch, ParsedMessage } from '../../agent/shipping/batch.ts';
import { decodeBatch, encodeBatch, serializeBatchBody } from '../../agent/shipping/codec.ts';
import type { Compression } from '../../agent/shipping/codec.ts';
import { syntheticBatch } from '../shipping/synthetic.ts';
import * as mainCodec from './baseline/batch-codec-main.ts';

const count = Number(process.argv[2] ?? 2000);
const rounds = Number(process.argv[3] ?? 9);

// --- NDJSON reference: one header line, then one line per message (bigints as strings, payload base64).

function toNdjson(b: Batch): Uint8Array {
  const lines = [JSON.stringify({ version: b.version, agentId: b.agentId, host: b.host, slot: b.slot, slotSeconds: b.slotSeconds, part: b.part, processes: b.processes, closed: b.closed.map((c) => ({ ...c, tsNs: c.tsNs.toString() })) })];
  for (const m of b.messages) {
    lines.push(JSON.stringify({ ...m, tsNs: m.tsNs.toString(), enterNs: m.enterNs.toString(), exitNs: m.exitNs.toString(), payload: Buffer.from(m.payload).toString('base64') }));
  }
  return Buffer.from(lines.join('\n') + '\n');
}

interface JsonMessage extends Omit<ParsedMessage, 'tsNs' | 'enterNs' | 'exitNs' | 'payload'> {
  tsNs: string;
  enterNs: string;
  exitNs: string;
  payload: string;
}

function fromNdjson(bytes: Uint8Array): Batch {
  const lines = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8').split('\n');
  const head = JSON.parse(lines[0]) as Omit<Batch, 'messages' | 'closed'> & { closed: Array<{ tsNs: string; pid: number; socketId: number }> };
  const messages: ParsedMessage[] = [];
  for (let i = 1; i < lines.length; i++) {
    if (!lines[i]) continue;
    const j = JSON.parse(lines[i]) as JsonMessage;
    messages.push({ ...j, tsNs: BigInt(j.tsNs), enterNs: BigInt(j.enterNs), exitNs: BigInt(j.exitNs), payload: Buffer.from(j.payload, 'base64') });
  }
  return { ...head, messages, closed: head.closed.map((c) => ({ ...c, tsNs: BigInt(c.tsNs) })) };
}

interface Format {
  name: string;
  encode(b: Batch): Uint8Array;
  decode(bytes: Uint8Array): Batch;
}

const rtb = (compression: Compression, level: number): Format => ({
  name: `RTB + ${compression}${compression === 'none' ? '' : `-${level}`}`,
  encode: (b) => encodeBatch(b, { compression, level }),
  decode: (bytes) => decodeBatch(bytes),
});

const rtbMain = (compression: Compression, level: number): Format => ({
  name: `RTB main + ${compression}${compression === 'none' ? '' : `-${level}`}`,
  encode: (b) => mainCodec.encodeBatch(b, { compression, level }),
  decode: (bytes) => mainCodec.decodeBatch(bytes),
});

const formats: Format[] = [
  { name: 'NDJSON', encode: toNdjson, decode: fromNdjson },
  { name: 'NDJSON + gzip-6', encode: (b) => gzipSync(toNdjson(b)), decode: (x) => fromNdjson(gunzipSync(x)) },
  { name: 'NDJSON + gzip-1', encode: (b) => gzipSync(toNdjson(b), { level: 1 }), decode: (x) => fromNdjson(gunzipSync(x)) },
  rtb('none', 0),
  rtbMain('none', 0),
  rtb('deflate', 1),
  rtb('deflate', 6),
  rtb('gzip', 1),
  rtb('brotli', 1),
  rtbMain('brotli', 1),
  rtb('brotli', 2),
  rtb('brotli', 4),
];

/**
 * CPU time of this process (user + system, all threads), in ns. The machines we bench on are shared,
 * so wall time mostly measures the neighbours; CPU time measures what encoding costs.
 */
function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const batches = Array.from({ length: rounds }, (_, i) => syntheticBatch(count, i + 1));
const payloadBytes = batches[0].messages.reduce((n, m) => n + m.payload.length, 0) / count;

// Written as format 3, the split codec's body is main's, byte for byte (checked outside the timed
// rounds); format 4 adds only the descriptor section at the end.
let sectionBytes = 0;
for (const b of batches) {
  const v3 = serializeBatchBody(b, 3);
  if (!Buffer.from(mainCodec.serializeBatchBody(b)).equals(Buffer.from(v3))) throw new Error('main and split codec write different format 3 bodies');
  const v4 = serializeBatchBody(b);
  if (!Buffer.from(v4.subarray(0, v3.length)).equals(Buffer.from(v3))) throw new Error('format 4 body does not start with the format 3 body');
  sectionBytes = v4.length - v3.length;
}

// Warm every format up first, then interleave the rounds (format by format inside each round) so
// that noise from other work on the machine spreads over all formats alike; every other round runs
// the formats in reverse, so no format always follows the same neighbour (GC debt carries over).
for (const f of formats) for (let i = 0; i < 5; i++) f.decode(f.encode(syntheticBatch(300, 99)));
const enc = formats.map((): number[] => []);
const dec = formats.map((): number[] => []);
const size = formats.map((): number[] => []);
batches.forEach((b, round) => {
  const order = formats.map((_, k) => k);
  if (round % 2 === 1) order.reverse();
  for (const k of order) {
    const f = formats[k];
    let t = cpuNs();
    const bytes = f.encode(b);
    enc[k].push((cpuNs() - t) / count);
    t = cpuNs();
    const back = f.decode(bytes);
    dec[k].push((cpuNs() - t) / count);
    if (back.messages.length !== count) throw new Error(`${f.name}: decoded ${back.messages.length} of ${count}`);
    size[k].push(bytes.length / count);
  }
});
const rows = formats.map((f, k) => {
  const e = median(enc[k]);
  return [f.name, median(size[k]).toFixed(1), Math.round(e).toString(), Math.round(median(dec[k])).toString(), Math.round(1e9 / e / 1000).toString()];
});

const header = ['format', 'bytes/msg', 'encode CPU ns/msg', 'decode CPU ns/msg', 'encode k msg/s/core'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (r: string[]) => '| ' + r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ') + ' |';
console.log(`Batch encoding: ${count} messages per batch, median of ${rounds} batches, mean payload head ${payloadBytes.toFixed(0)} B/msg`);
console.log(`node ${process.version}, ${cpus()[0]?.model ?? 'unknown cpu'}; format 4 descriptor section: ${sectionBytes} B per batch before compression`);
console.log('');
console.log(line(header));
console.log('|' + widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|');
for (const r of rows) console.log(line(r));

// Body only (no compression, no framing), ours against main's copy: the refactor's own cost, in
// 60 interleaved rounds (order reversed every other round), 3 serialisations per round and batch.
{
  const ab: Array<[string, (b: Batch) => unknown]> = [
    ['ours, format 3 body', (b) => serializeBatchBody(b, 3)],
    ['ours, format 4 body', (b) => serializeBatchBody(b)],
    ['main, format 3 body', (b) => mainCodec.serializeBatchBody(b)],
  ];
  const t = ab.map((): number[] => []);
  for (let r = 0; r < 60; r++) {
    const order = ab.map((_, k) => k);
    if (r % 2 === 1) order.reverse();
    for (const k of order) {
      const b = batches[r % batches.length];
      const t0 = cpuNs();
      for (let j = 0; j < 3; j++) ab[k][1](b);
      t[k].push((cpuNs() - t0) / (3 * count));
    }
  }
  console.log('');
  console.log('| body serialisation (A/B) | CPU ns/msg |');
  console.log('|---|---:|');
  ab.forEach(([n], k) => console.log(`| ${n} | ${Math.round(median(t[k]))} |`));
}
