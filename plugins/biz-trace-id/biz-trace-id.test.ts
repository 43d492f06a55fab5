import { describe, expect, it } from 'vitest';
import { loadPluginForTest } from '../../sdk-plugin/testing.ts';
import { runHttpHooks } from '../../agent/plugins/types.ts';
import type { HttpHookPlugin } from '../../agent/plugins/types.ts';
import type { L7Message, ParseContext } from '../../agent/protocols/parser.ts';

const dir = new URL('.', import.meta.url).pathname;

describe('biz-trace-id plugin', async () => {
  const plugin = await loadPluginForTest(dir);

  it('matches every fixture', async () => {
    const runs = await plugin.runFixtures(dir + 'fixtures');
    expect(runs.length).toBeGreaterThanOrEqual(5);
    for (const r of runs) expect(r.result, r.name).toEqual(r.expect);
  });

  it('joins two services that pass only the transaction id', () => {
    // gateway → payments: the gateway's outgoing request and payments' incoming request carry
    // the same body; payments → ledger forwards the id in its own body. No tracing headers anywhere.
    const hook: HttpHookPlugin = {
      name: 'biz-trace-id',
      onHttpRequest: (_m, payload, ctx) => plugin.httpRequest(payload, {}, ctx),
      onHttpResponse: () => null,
    };
    const req = (body: string) => `POST /x HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n\r\n${body}`;
    const ctx = (direction: 'egress' | 'ingress'): ParseContext => ({ direction, role: direction === 'egress' ? 'client' : 'server', l4: 'tcp', localPort: 1, remotePort: 2, socketId: 3, bytes: 100, state: {} });
    const spans: L7Message[] = [];
    for (const [body, dirn] of [
      ['{"txn_id":"T-77","amount":1}', 'egress'],
      ['{"txn_id":"T-77","amount":1}', 'ingress'],
      ['{"transactionId":"T-77","debit":1}', 'egress'],
    ] as const) {
      const msg: L7Message = { l7Protocol: 'http1', msgType: 'request', requestType: 'POST' };
      runHttpHooks([hook], msg, new TextEncoder().encode(req(body)), ctx(dirn));
      spans.push(msg);
    }
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set(['T-77']));
    expect(spans[2].attributes?.biz_id).toBe('T-77');
  });
});
