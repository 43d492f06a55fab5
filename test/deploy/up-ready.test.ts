// Readiness tells the truth: a script that waits for `GET /readyz` on `riptide up` and then sends
// traffic loses none of it. Before capture is live, /readyz is 503 and says why; /healthz is
// liveness only (200 while the process serves).
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Answer, RunningUp } from './up-harness.ts';
import { expectedResources, sendRequests, spansOf, startTarget, startUp } from './up-harness.ts';

describe('riptide up: GET /readyz', () => {
  let up: RunningUp;
  let target: { server: Server; port: number };
  let seen: Answer[] = [];

  beforeAll(async () => {
    target = await startTarget();
    up = await startUp();
    seen = await up.until('/readyz', (a) => a.status === 200, 90_000);
  });
  afterAll(async () => {
    await up?.stop();
    target?.server.close();
  });

  it('is 503 with the reasons (JSON) until capture is live, then 200', () => {
    const before = seen.filter((a) => a.status !== 200);
    expect(before.length, 'no 503 seen between listening and ready').toBeGreaterThan(0);
    for (const a of before) {
      expect(a.status).toBe(503);
      expect(a.body.status).toBe('not ready');
      expect(a.body.reasons?.length).toBeGreaterThan(0);
      for (const r of a.body.reasons ?? []) expect(typeof r).toBe('string');
    }
    expect(before.flatMap((a) => a.body.reasons ?? [])).toContain('agent starting');
    expect(seen.at(-1)?.body).toEqual({ status: 'ready' });
    // The agent printed "capturing" before up called itself ready.
    expect(up.stderr()).toContain('riptide up: agent capturing');
  });

  it('loses none of the requests sent right after the first 200', async () => {
    const tag = `ready-${randomBytes(4).toString('hex')}`;
    const n = 25;
    await sendRequests(target.port, tag, n);
    expect(await spansOf(up, target.port, tag, n)).toEqual(expectedResources(tag, n));
  });

  it('keeps /healthz for liveness: 200 ok while everything runs', async () => {
    expect(await up.get('/healthz')).toEqual({ status: 200, body: { status: 'ok' } });
  });
});
