/**
 * Freshness: how long after a request completes it can be found as a span, on the embedded default
 * (`riptide up`: agent → local folder store → function runtime → chDB → query API), as a user sees
 * it through `GET /api/v1/spans`. DESIGN.md target: within 5 s median.
 *
 *   npx tsx test/bench/freshness.ts [--requests 40] [--slots 1,5]
 *
 * For each slot length (`--slot-seconds`, default 1 s; 5 s for comparison), one `riptide up` on a
 * fresh data dir; a plain Node HTTP server and client in this process make one request every
 * 300 ms (random phase inside the slot), and a poller asks the API every 100 ms for the spans of
 * the requests not yet seen. Latency = first time the server-side span is returned − the time the
 * client had the response. The poll interval bounds the resolution (±100 ms).
 *
 * Also, as a user of plain SQL sees it (`POST /api/v1/sql`, polled every 500 ms): when each server span
 * first appears in `riptide.spans` ("sql" columns), and, once every span has appeared (or 60 s),
 * how many rows plain `count()` finds for the run's spans against how many distinct spans there are.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO, RIPTIDE, freePort } from '../helpers/agent.ts';

const { values } = parseArgs({ options: { requests: { type: 'string', default: '40' }, slots: { type: 'string', default: '1,5' } } });
const REQUESTS = Number(values.requests);
const SLOTS = values.slots.split(',').map(Number);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

function post(url: string, json: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(json));
  });
}

async function sql<T>(port: number, query: string): Promise<T[]> {
  const { status, body } = await post(`http://127.0.0.1:${port}/api/v1/sql`, { sql: query });
  if (status !== 200) throw new Error(`POST /api/v1/sql: ${status} ${body.slice(0, 300)}`);
  return (JSON.parse(body) as { rows: T[] }).rows;
}

interface RunResult {
  api: number[];
  sql: number[];
  rows: number;
  spans: number;
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

async function startUp(dataDir: string, port: number, slot: number): Promise<ChildProcess> {
  const up = spawn(process.execPath, [RIPTIDE, 'up', '--data-dir', dataDir, '--port', String(port), '--slot-seconds', String(slot)], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let err = '';
    const t = setTimeout(() => reject(new Error(`riptide up did not get ready: ${err.slice(-2000)}`)), 180_000);
    up.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
      if (err.includes('riptide up: ready')) {
        clearTimeout(t);
        resolve();
      }
    });
    up.once('exit', (code) => reject(new Error(`riptide up exited ${code}: ${err.slice(-2000)}`)));
  });
  return up;
}

async function run(slot: number): Promise<RunResult> {
  const dataDir = mkdtempSync(join(tmpdir(), 'riptide-bench-fresh-'));
  const apiPort = await freePort();
  const up = await startUp(dataDir, apiPort, slot);
  const server = http.createServer((req, res) => res.end(`ok ${req.url}`));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const appPort = (server.address() as { port: number }).port;
  const tag = `fresh${slot}x${Date.now() % 100000}`;
  const done = new Map<number, number>();
  const seen = new Map<number, number>();
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const { status, body } = await get(`http://127.0.0.1:${apiPort}/api/v1/spans?start=${Date.now() / 1000 - 300}&side=server&resource=${tag}&limit=1000`);
      const now = performance.now();
      if (status === 200) {
        for (const s of (JSON.parse(body) as { spans: Array<{ request_resource: string }> }).spans) {
          const m = new RegExp(`/${tag}/(\\d+)$`).exec(s.request_resource);
          if (m && done.has(Number(m[1])) && !seen.has(Number(m[1]))) seen.set(Number(m[1]), now - (done.get(Number(m[1])) as number));
        }
      }
      await sleep(100);
    }
  })();
  const inSql = new Map<number, number>();
  const sqlPoller = (async () => {
    while (polling) {
      try {
        const rows = await sql<{ r: string }>(apiPort, `SELECT request_resource AS r FROM riptide.spans WHERE side = 'server' AND position(request_resource, '/${tag}/') > 0`);
        const now = performance.now();
        for (const { r } of rows) {
          const m = new RegExp(`/${tag}/(\\d+)$`).exec(r);
          if (m && done.has(Number(m[1])) && !inSql.has(Number(m[1]))) inSql.set(Number(m[1]), now - (done.get(Number(m[1])) as number));
        }
      } catch {
        // not ready yet
      }
      await sleep(500);
    }
  })();
  for (let i = 0; i < REQUESTS; i++) {
    await get(`http://127.0.0.1:${appPort}/${tag}/${i}`);
    done.set(i, performance.now());
    await sleep(250 + Math.random() * 100);
  }
  const deadline = performance.now() + 60_000;
  while ((seen.size < REQUESTS || inSql.size < REQUESTS) && performance.now() < deadline) await sleep(200);
  polling = false;
  await poller;
  await sqlPoller;
  // What plain SQL counts for this run's spans (client and server), against the distinct spans.
  const [c] = await sql<{ rows: number; spans: number }>(apiPort, `SELECT count() AS rows, uniqExact(span_id) AS spans FROM riptide.spans WHERE position(request_resource, '/${tag}/') > 0`);
  server.close();
  up.kill('SIGINT');
  await new Promise((r) => up.once('exit', r));
  rmSync(dataDir, { recursive: true, force: true });
  if (seen.size < REQUESTS) console.log(`slot ${slot}s: ${REQUESTS - seen.size} of ${REQUESTS} requests never showed up in the API within 60 s`);
  if (inSql.size < REQUESTS) console.log(`slot ${slot}s: ${REQUESTS - inSql.size} of ${REQUESTS} requests never showed up in riptide.spans within 60 s`);
  return { api: [...seen.values()], sql: [...inSql.values()], rows: Number(c.rows), spans: Number(c.spans) };
}

const results: Array<[number, RunResult]> = [];
for (const slot of SLOTS) results.push([slot, await run(slot)]);
console.log(`\nfreshness on the embedded default (riptide up), ${REQUESTS} requests per row, load average ${loadavg()[0].toFixed(1)}`);
console.log('                 GET /api/v1/spans              plain SQL on riptide.spans');
console.log('slot     found   median ms   p90 ms   max ms   found   median ms   rows  spans');
const cols = (l: number[]): string => (l.length === 0 ? `${'0'.padStart(5)}   ${'-'.padStart(9)}` : `${String(l.length).padStart(5)}   ${pct(l, 50).toFixed(0).padStart(9)}`);
for (const [slot, r] of results) {
  const api = r.api.length === 0 ? `${'0'.padStart(5)}   ${'-'.padStart(9)}   ${'-'.padStart(6)}   ${'-'.padStart(6)}` : `${cols(r.api)}   ${pct(r.api, 90).toFixed(0).padStart(6)}   ${Math.max(...r.api).toFixed(0).padStart(6)}`;
  console.log(`${`${slot} s`.padEnd(8)} ${api}   ${cols(r.sql)}   ${String(r.rows).padStart(4)}   ${String(r.spans).padStart(4)}`);
}
