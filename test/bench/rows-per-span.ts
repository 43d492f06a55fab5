/**
 * Rows written per span: how many rows the functions insert for each span, and what plain SQL on
 * `riptide.spans` counts, on a live-like stream — 1 s slots (as `riptide up` runs), each slot's batch
 * arriving half a second after the slot ended, processed by the polling runtime (one poll per
 * arrival, `processKeys`) and, separately, one event per object (`processBatch`, the HTTP and Lambda
 * adapters). Background merges are stopped, so every inserted row is still a row when counted.
 *
 *   npx tsx test/bench/rows-per-span.ts [--seconds 30] [--rps 200]
 *
 * Stream: a client and a server process on one host, 16 keep-alive connections making about `--rps`
 * requests per second; 93% answered in 2 ms, 5% in 300 ms (some cross a slot boundary), 1% in 2.5 s
 * (two or three slots later), 1% never.
 * Runs the same on a checkout without settled slots (it then reports riptide.spans only).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Batch, ParsedMessage } from '../../agent/shipping/batch.ts';
import { BatchProcessor } from '../../functions/runtime/processor.ts';
import { LocalRuntime } from '../../functions/runtime/local-runtime.ts';
import { openClickHouse, queryRows } from '../../functions/storage/clickhouse.ts';
import { migrate } from '../../functions/storage/migrations.ts';
import { TagEncoder } from '../../functions/tag-encoder/tag-encoder.ts';
import { DenseTagIds } from '../../functions/tag-encoder/tag-ids.ts';
import { cutBatches, httpReq, httpResp, msg, proc } from '../functions/fixtures.ts';
import { decodeJson, encodeJson, MemoryStore, testKey, testKeys } from '../functions/memory-store.ts';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '30' }, rps: { type: 'string', default: '200' } } });
const SECONDS = Number(values.seconds);
const RPS = Number(values.rps);

/** Dated now (spans_recent keeps an hour), slot-aligned, ending before now. */
const BASE_MS = Math.floor(Date.now() / 1000) * 1000 - (SECONDS + 5) * 1000;

function stream(agent: string): Batch[] {
  let seed = 7;
  const rnd = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const msgs: ParsedMessage[] = [];
  // CONNS keep-alive connections, each serial (a request waits for the previous answer), together `--rps`.
  const CONNS = 16;
  for (let c = 0; c < CONNS; c++) {
    const client = { socketId: 1000 + c, pid: 100, processName: 'shop', role: 'client' as const, localIp: '10.3.0.1', localPort: 52000 + c, remoteIp: '10.3.0.2', remotePort: 80 };
    const server = { socketId: 5000 + c, pid: 200, processName: 'api', role: 'server' as const, localIp: '10.3.0.2', localPort: 80, remoteIp: '10.3.0.1', remotePort: 52000 + c };
    const at = (sock: typeof client | typeof server, ms: number, dir: 'egress' | 'ingress', l7: ParsedMessage['l7'], seq: number): ParsedMessage => {
      const ts = BigInt(Math.round((BASE_MS + ms) * 1000)) * 1000n;
      return msg(sock, 0, dir, l7, { tsNs: ts, enterNs: ts, exitNs: ts + 1000n, tcpSeq: seq, tid: sock.pid + c });
    };
    let t = rnd() * 100;
    for (let i = 0; t < SECONDS * 1000 - 3000; i++) {
      const u = rnd();
      const lat = u < 0.93 ? 2 : u < 0.98 ? 300 : u < 0.99 ? 2500 : -1;
      const seq = c * 1e6 + i * 2;
      msgs.push(at(client, t, 'egress', [httpReq(`/q/${c}/${i}`)], seq), at(server, t + 0.1, 'ingress', [httpReq(`/q/${c}/${i}`)], seq));
      if (lat < 0) {
        // Never answered: the client gives up and opens a new connection.
        client.socketId += 100;
        server.socketId += 100;
      } else {
        msgs.push(at(server, t + lat, 'egress', [httpResp(200)], seq + 1), at(client, t + lat + 0.1, 'ingress', [httpResp(200)], seq + 1));
      }
      t += Math.max(lat, 0) + (CONNS * 1000) / RPS * (0.5 + rnd());
    }
  }
  msgs.sort((a, b) => (a.tsNs < b.tsNs ? -1 : a.tsNs > b.tsNs ? 1 : 0));
  return [...cutBatches(agent, msgs, [proc(100, 'shop'), proc(200, 'api')], 'host-bench', 1).values()].sort((a, b) => a.slot - b.slot);
}

const dir = mkdtempSync(join(tmpdir(), 'riptide-bench-rows-'));
const ch = await openClickHouse({ dataDir: dir });
try {
  await migrate(ch);
  const tables = new Set((await queryRows<{ name: string }>(ch, "SELECT name FROM system.tables WHERE database = 'riptide'")).map((r) => r.name));
  const hasRecent = tables.has('spans_recent');
  for (const t of ['spans', 'spans_recent']) if (tables.has(t)) await ch.client.command({ query: `SYSTEM STOP MERGES riptide.${t}` });
  const ids = await DenseTagIds.load(ch);
  const lines: string[] = [];
  for (const mode of ['poll', 'events'] as const) {
    const agent = `bench-${mode}`;
    const batches = stream(agent);
    const store = new MemoryStore();
    const clock = { now: 0 };
    const p = new BatchProcessor({ ch, store, keys: testKeys, decode: decodeJson, log: () => {}, encoder: new TagEncoder({ ids }), now: () => clock.now });
    const rt = new LocalRuntime({ process: (k) => p.processBatch(k), processMany: (ks) => p.processKeys(ks), settle: () => p.settleDue(), store, keys: testKeys, log: () => {} });
    const t0 = performance.now();
    for (const b of batches) {
      clock.now = (b.slot + 1) * 1000 + 500;
      const k = testKey(b);
      await store.put(k, encodeJson(b));
      if (mode === 'poll') await rt.tick();
      else await p.processBatch(k);
    }
    clock.now = (batches[batches.length - 1].slot + 300) * 1000; // past every window and the longest wait
    if (mode === 'poll') await rt.tick();
    else await p.processBatch(testKey(batches[batches.length - 1]));
    const ms = performance.now() - t0;
    const one = async (sql: string): Promise<number> => Number((await queryRows<{ n: number }>(ch, sql, { a: agent }))[0].n);
    const spans = await one('SELECT count() AS n FROM riptide.spans FINAL WHERE agent_id = {a:String} AND _deleted = 0');
    const plain = await one('SELECT count() AS n FROM riptide.spans WHERE agent_id = {a:String}');
    const tomb = await one('SELECT count() AS n FROM riptide.spans WHERE agent_id = {a:String} AND _deleted = 1');
    const recent = hasRecent ? await one('SELECT count() AS n FROM riptide.spans_recent WHERE agent_id = {a:String}') : 0;
    const written = plain + recent;
    lines.push(
      `${mode.padEnd(7)} ${String(batches.length).padStart(5)} ${String(spans).padStart(7)} ${String(plain).padStart(10)} ${(plain / spans).toFixed(2).padStart(8)} ${String(tomb).padStart(10)} ${String(recent).padStart(8)} ${(written / spans).toFixed(2).padStart(10)} ${(ms / 1000).toFixed(1).padStart(7)}`,
    );
  }
  console.log(`\nrows written per span, ${SECONDS} s of 1 s slots at ${RPS} req/s, merges stopped${hasRecent ? '' : ' (no spans_recent on this checkout)'}`);
  console.log('mode    slots   spans  spans rows  per span  tombstones  recent  total/span  time s');
  for (const l of lines) console.log(l);
} finally {
  await ch.close();
  rmSync(dir, { recursive: true, force: true });
}
