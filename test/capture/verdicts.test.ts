// Per-socket verdicts (issue 18) against the same traffic captured without them: two captures run
// side by side on the same ports, one telling its kernel program what each socket needs, one not.
// Every L7 field parsed without verdicts is parsed with them; sockets nothing parses stop sending
// records but every message is still counted; capped HTTP responses are cut; a socket opened on
// the same fd after a count-only socket closed is captured in full.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Capture } from '../../agent/capture/capture.ts';
import type { CapturedMessage } from '../../agent/capture/message.ts';
import { AgentPipeline } from '../../agent/pipeline.ts';
import type { L7Message } from '../../agent/protocols/parser.ts';
import { createDefaultRegistry } from '../../agent/protocols/registry.ts';
import { MetricsRegistry, metrics } from '../../agent/metrics.ts';
import type { RunningServer } from '../protocols/servers.ts';
import { runAsync, startNginx, startRedis } from '../protocols/servers.ts';
import { freePort } from '../helpers/agent.ts';

interface Seen {
  m: CapturedMessage;
  l7: L7Message[];
  /** Payload bytes captured (the payload itself is dropped, as the shipper does). */
  captured: number;
}

/**
 * A capture through the agent's pipeline. The output drops payloads like the shipper's, so the
 * capture with verdicts also parses from views into the ring (no copies): the same L7 fields
 * prove that path too.
 */
function collect(verdicts: boolean, ports: number[]): { cap: Capture; seen: Seen[] } {
  const seen: Seen[] = [];
  const registry = createDefaultRegistry({ metrics: new MetricsRegistry() });
  const output = {
    message: (m: CapturedMessage, l7: L7Message[]) => {
      seen.push({ m, l7, captured: m.payload.length });
      m.payload = new Uint8Array(0);
    },
    socketClosed: () => {},
    dropsPayload: verdicts,
  };
  const pipeline = new AgentPipeline({ registry, output, socketVerdicts: verdicts });
  expect(pipeline.payloadViews).toBe(verdicts);
  const cap = Capture.start({ filter: { ports }, pollMs: 2, verdicts }, pipeline);
  return { cap, seen };
}

/** The same bytes on the same connection end, whichever capture saw them (socket ids differ per program). */
const key = (m: CapturedMessage): string => `${m.pid}/${m.tid}/${m.direction}/${m.localPort}-${m.remotePort}/${m.tcpSeq}/${m.bytes}`;

// A private binary protocol no parser knows: 40 writes of 64 bytes, 15 ms apart, then the client
// closes and opens a new connection (the same fd number) speaking HTTP/1.
const GARBAGE = (port: number): string => `
const net = require('net');
const srv = net.createServer((c) => c.on('data', (d) => { if (d.toString().startsWith('GET')) c.end('HTTP/1.1 200 OK\\r\\nContent-Length: 3\\r\\n\\r\\nok\\n'); }));
srv.listen(${port}, '127.0.0.1', () => {
  const s = net.connect(${port}, '127.0.0.1', async () => {
    const chunk = Buffer.alloc(64); for (let i = 0; i < 64; i++) chunk[i] = (i * 37 + 1) & 0xff;
    for (let i = 0; i < 40; i++) { chunk[0] = i; s.write(chunk); await new Promise((r) => setTimeout(r, 15)); }
    s.end(); await new Promise((r) => s.once('close', r)); await new Promise((r) => setTimeout(r, 50));
    const h = net.connect(${port}, '127.0.0.1', () => h.write('GET /after-reuse HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'));
    h.on('data', () => {}); h.on('close', () => { srv.close(); process.exit(0); });
  });
});`;

describe('per-socket verdicts', () => {
  let nginx: RunningServer;
  let redis: RunningServer;
  let garbagePort: number;
  let on: { cap: Capture; seen: Seen[] };
  let off: { cap: Capture; seen: Seen[] };

  beforeAll(async () => {
    nginx = await startNginx();
    redis = await startRedis();
    garbagePort = await freePort();
    const ports = [nginx.port, redis.port, garbagePort];
    on = collect(true, ports);
    off = collect(false, ports);
    const base = `http://127.0.0.1:${nginx.port}`;
    // One keep-alive connection: the verdict is given after its first request.
    // --rate spaces the requests (50 ms): the verdict is given while the connection stays open.
    await runAsync('curl', ['-sS', '--rate', '20/s', '-o', '/dev/null', '-H', 'traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', `${base}/`, `${base}/static/big.txt`, `${base}/fail`, `${base}/static/big.txt`, `${base}/api/x?y=1`, `${base}/`]);
    for (const cmd of [['SET', 'k', 'v'], ['GET', 'k'], ['INCR', 'n'], ['LPUSH', 'l', 'a', 'b']]) await runAsync('redis-cli', ['-p', String(redis.port), ...cmd]);
    const child = spawn(process.execPath, ['-e', GARBAGE(garbagePort)], { stdio: 'ignore' });
    await new Promise((r) => child.once('exit', r));
    await new Promise((r) => setTimeout(r, 200));
    on.cap.drainOnce();
    off.cap.drainOnce();
  }, 60_000);
  afterAll(async () => {
    on?.cap.stop();
    off?.cap.stop();
    await nginx?.stop();
    await redis?.stop();
  });

  it('parses every L7 field it parsed without verdicts', () => {
    const withV = new Map(on.seen.map((s) => [key(s.m), s.l7]));
    const parsed = off.seen.filter((s) => s.l7.length > 0);
    expect(parsed.filter((s) => s.l7[0].l7Protocol === 'http1').length).toBeGreaterThanOrEqual(24); // 6 requests, 4 views each
    expect(parsed.filter((s) => s.l7[0].l7Protocol === 'redis').length).toBeGreaterThanOrEqual(16);
    for (const s of parsed) expect(withV.get(key(s.m)), `${s.l7[0].l7Protocol} ${key(s.m)}`).toEqual(s.l7);
    // The trace context of the request survived on both ends.
    expect(on.seen.filter((s) => s.l7.some((l) => l.traceId === '0af7651916cd43dd8448eb211c80319c')).length).toBeGreaterThanOrEqual(2);
  });

  it('cuts HTTP/1 responses to their cap and counts it', () => {
    const big = (s: Seen): boolean => s.l7.some((l) => l.msgType === 'response') && s.m.bytes > 4000;
    const cut = on.seen.filter(big);
    const full = off.seen.filter(big);
    expect(full.length).toBeGreaterThanOrEqual(2);
    expect(full.every((s) => s.captured === 1024)).toBe(true);
    // The first response on a socket may come before its verdict; later ones are cut.
    expect(cut.some((s) => s.captured === 512)).toBe(true);
    expect(cut.every((s) => s.captured <= 1024)).toBe(true);
    const v = on.cap.verdictCounters();
    expect(v.capped).toBeGreaterThanOrEqual(1);
    expect(v.cappedBytes).toBeGreaterThanOrEqual(512);
    expect(off.cap.verdictCounters().capped).toBe(0);
  });

  it('stops sending sockets nothing parses, counting every message', () => {
    const garbage = (s: Seen): boolean => (s.m.localPort === garbagePort || s.m.remotePort === garbagePort) && s.l7.length === 0;
    const without = off.seen.filter(garbage);
    const withV = on.seen.filter(garbage);
    const bytes = (l: Seen[]): number => l.reduce((n, s) => n + s.m.bytes, 0);
    const v = on.cap.verdictCounters();
    expect(without.length).toBeGreaterThanOrEqual(70); // 40 writes, and the server's reads
    expect(withV.length).toBeLessThan(without.length / 2);
    // Nothing lost: what was not sent was counted, message for message and byte for byte.
    expect(withV.length + v.skipped).toBe(without.length);
    expect(bytes(withV) + v.skippedBytes).toBe(bytes(without));
    expect(off.cap.verdictCounters().skipped).toBe(0);
    // On /metrics (the process-wide registry; the capture with verdicts collected last).
    off.cap.collectKernelCounters();
    on.cap.collectKernelCounters();
    const text = metrics.render();
    expect(text).toContain(`riptide_capture_not_sent_total{reason="unparseable"} ${v.skipped}`);
    expect(text).toContain(`riptide_capture_not_sent_bytes_total{reason="unparseable"} ${v.skippedBytes}`);
    expect(text).toMatch(/riptide_capture_verdicts_total\{verdict="count_only"\} [1-9]/);
  });

  it('captures a new socket on a reused fd in full', () => {
    const after = (s: Seen): boolean => s.l7.some((l) => l.requestResource === '/after-reuse');
    expect(off.seen.filter(after).length).toBe(2);
    const seen = on.seen.filter(after);
    expect(seen.length).toBe(2);
    expect(seen.every((s) => s.captured === s.m.bytes)).toBe(true);
  });
});
