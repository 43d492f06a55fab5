// The agent's status server: /healthz is liveness (503 with the reason), /readyz readiness (503
// with every reason, JSON), /metrics the registry.
import { afterEach, describe, expect, it } from 'vitest';
import type { StatusServer } from './status-server.ts';
import { startStatusServer } from './status-server.ts';

let status: StatusServer | undefined;
afterEach(async () => {
  await status?.close();
  status = undefined;
});

async function get(path: string): Promise<{ code: number; body: unknown }> {
  const r = await fetch(`http://127.0.0.1:${status!.port}${path}`);
  const text = await r.text();
  return { code: r.status, body: r.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
}

describe('status server', () => {
  it('answers ok and ready when nothing is wrong', async () => {
    status = await startStatusServer(0);
    expect(await get('/healthz')).toEqual({ code: 200, body: { status: 'ok' } });
    expect(await get('/readyz')).toEqual({ code: 200, body: { status: 'ready' } });
    expect((await get('/metrics')).code).toBe(200);
    expect(await get('/nope')).toEqual({ code: 404, body: { error: 'no route /nope; try /healthz, /readyz or /metrics' } });
  });

  it('is unhealthy and not ready while the health check names a problem', async () => {
    let problem: string | null = 'ring buffer not drained for 6.0 s';
    status = await startStatusServer(0, '127.0.0.1', { health: () => problem });
    expect(await get('/healthz')).toEqual({ code: 503, body: { status: 'unhealthy', reason: 'ring buffer not drained for 6.0 s' } });
    expect(await get('/readyz')).toEqual({ code: 503, body: { status: 'not ready', reasons: ['ring buffer not drained for 6.0 s'] } });
    problem = null;
    expect((await get('/healthz')).code).toBe(200);
    expect((await get('/readyz')).code).toBe(200);
  });

  it('takes an async readiness check, and a failing one is a 503 that says so', async () => {
    let ready: () => Promise<string[]> = async () => ['store not reachable', 'still loading'];
    status = await startStatusServer(0, '127.0.0.1', { ready: () => ready() });
    expect(await get('/readyz')).toEqual({ code: 503, body: { status: 'not ready', reasons: ['store not reachable', 'still loading'] } });
    ready = () => Promise.reject(new Error('boom'));
    expect(await get('/readyz')).toEqual({ code: 503, body: { status: 'not ready', reasons: ['readiness check failed: boom'] } });
    expect((await get('/healthz')).code).toBe(200);
  });
});
