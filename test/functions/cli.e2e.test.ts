/**
 * `riptide functions` end to end on the real shipping pieces: batches encoded with the agent's codec
 * under the agent's key layout in a file:// store → the command (polling runtime, embedded chDB) →
 * spans in riptide.spans whose tag ids resolve to names; /healthz and /metrics on --port.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeBatch } from '../../agent/shipping/codec.ts';
import { batchKey } from '../../agent/shipping/keys.ts';
import { openStore } from '../../agent/shipping/store.ts';
import { openClickHouse, queryRows } from '../../functions/storage/clickhouse.ts';
import { cutBatches, httpReq, httpResp, msg, proc } from './fixtures.ts';

const dir = mkdtempSync(join(tmpdir(), 'riptide-fx-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('riptide functions (embedded defaults)', () => {
  it('turns store batches into spans in chDB, serving /healthz and /metrics', async () => {
    const store = openStore(pathToFileURL(join(dir, 'store')).href);
    const c = { socketId: 77, pid: 500, processName: 'checkout', role: 'client' as const, remoteIp: '10.9.0.2', remotePort: 6379 };
    const msgs = [];
    for (let i = 0; i < 8; i++) {
      msgs.push(msg(c, 4000 + i * 300, 'egress', [httpReq(`/o/${i}`)], { tcpSeq: i * 100 }));
      msgs.push(msg(c, 4000 + i * 300 + 250, 'ingress', [httpResp(200)], { tcpSeq: i * 90 }));
    }
    const batches = [...cutBatches('node-z', msgs, [proc(500, 'checkout')], 'host-z').values()];
    expect(batches.length).toBe(2); // the stream crosses a slot boundary
    for (const b of batches) await store.put(batchKey(b), encodeBatch(b));
    await store.put('batches/garbage.rtb', new TextEncoder().encode('not a batch')); // not a batch key: ignored

    const child = spawn(process.execPath, [resolve('agent/cli/riptide.mjs'), 'functions', '--data-dir', dir, '--port', '0', '--bind', '127.0.0.1', '--ttl-days', '20000', '--poll-ms', '200', '--kubernetes', 'off'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      const port = await until('the listening line', async () => /http:\/\/127\.0\.0\.1:(\d+)/.exec(stderr)?.[1]);
      const base = `http://127.0.0.1:${port}`;
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      await until('8 spans written', async () => {
        const m = await (await fetch(`${base}/metrics`)).text();
        const sent = Number(/riptide_functions_sent_total (\d+)/.exec(m)?.[1] ?? 0);
        return sent >= 8 ? m : undefined;
      });
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    expect(stderr).toMatch(/riptide functions: stopping/);

    const ch = await openClickHouse({ dataDir: dir });
    try {
      const rows = await queryRows<{ resource: string; state: string; service: string; host: string }>(
        ch,
        `SELECT s.request_resource AS resource, toString(s.pair_state) AS state, sv.name AS service, h.name AS host
         FROM riptide.spans AS s FINAL
         LEFT JOIN (SELECT id, any(name) AS name FROM riptide.tag_names GROUP BY id) AS sv ON sv.id = s.service_id
         LEFT JOIN (SELECT id, any(name) AS name FROM riptide.tag_names GROUP BY id) AS h ON h.id = s.host_id
         ORDER BY s.start_time`,
      );
      expect(rows.length).toBe(8);
      expect(rows.every((r) => r.state === 'paired' && r.service === 'checkout' && r.host === 'host-z')).toBe(true);
      const ledger = await queryRows<{ n: number }>(ch, 'SELECT count() AS n FROM riptide.processed_batches');
      expect(ledger[0].n).toBe(2);
    } finally {
      await ch.close();
    }
  });
});
