import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Server } from 'node:net';
import { loadPluginForTest } from '../../sdk-plugin/testing.ts';
import { loadPlugins } from '../../agent/plugins/host.ts';
import type { LoadedPlugins } from '../../agent/plugins/host.ts';
import { MetricsRegistry } from '../../agent/metrics.ts';
import type { L7Message, ParseContext } from '../../agent/protocols/parser.ts';
import { startServer } from './demo/server.ts';
import { TinyRpcClient } from './demo/client.ts';

const dir = new URL('.', import.meta.url).pathname;

describe('tinyrpc plugin', async () => {
  const plugin = await loadPluginForTest(dir);

  it('matches every fixture', async () => {
    const runs = await plugin.runFixtures(dir + 'fixtures');
    expect(runs.length).toBeGreaterThanOrEqual(6);
    for (const r of runs) expect(r.result, r.name).toEqual(r.expect);
  });

  describe('on a real connection: parallel calls answered out of order', () => {
    let server: Server;
    let plugins: LoadedPlugins;
    beforeAll(async () => {
      server = await startServer(0);
      plugins = await loadPlugins({ paths: [dir], reloadIntervalMs: 0, metrics: new MetricsRegistry(), log: () => {} });
    });
    afterAll(async () => {
      plugins.close();
      await new Promise((r) => server.close(r));
    });

    it('pairs every response with its request by id', async () => {
      const addr = server.address();
      const client = await TinyRpcClient.connect(typeof addr === 'object' && addr ? addr.port : 0);
      // tap the client socket's bytes the way the agent sees them: egress writes, ingress reads
      const seen: Array<{ direction: 'egress' | 'ingress'; bytes: Uint8Array }> = [];
      const sock = client.socket;
      const write = sock.write.bind(sock) as (chunk: Uint8Array) => boolean;
      (sock as unknown as { write: (chunk: Uint8Array) => boolean }).write = (chunk: Uint8Array) => {
        seen.push({ direction: 'egress', bytes: new Uint8Array(chunk) });
        return write(chunk);
      };
      sock.on('data', (chunk: Buffer) => seen.push({ direction: 'ingress', bytes: new Uint8Array(chunk) }));

      const calls = [
        client.call('sleep', '60'),
        client.call('echo', 'héllo wörld'),
        client.call('sleep', '30'),
        client.call('fail', 'disk full'),
        client.call('upper', 'abc'),
        client.call('nope', ''),
      ];
      const results = await Promise.all(calls);
      client.close();
      expect(results.map((r) => r.body)).toEqual(['slept', 'héllo wörld', 'slept', 'failed: disk full', 'ABC', 'unknown method nope']);

      const [parser] = plugins.parsers;
      expect(parser).toMatchObject({ name: 'tinyrpc', parallel: true });
      const msgs: L7Message[] = [];
      for (const s of seen) {
        const ctx: ParseContext = { direction: s.direction, role: 'client', l4: 'tcp', localPort: 50000, remotePort: 7070, socketId: 1, bytes: s.bytes.length, state: {} };
        expect(parser.check(s.bytes, ctx)).toBe(true);
        msgs.push(...(parser.parse(s.bytes, ctx) ?? []));
      }
      const reqs = new Map(msgs.filter((m) => m.msgType === 'request').map((m) => [m.requestId, m]));
      const resps = msgs.filter((m) => m.msgType === 'response');
      expect(reqs.size).toBe(6);
      expect(resps).toHaveLength(6);
      // responses came back out of order, yet each pairs with exactly one request
      expect(resps.map((r) => r.requestId)).not.toEqual([1, 2, 3, 4, 5, 6]);
      const pairs = resps.map((r) => [reqs.get(r.requestId)?.requestResource, r.responseStatus, r.responseException]);
      expect(pairs).toEqual(expect.arrayContaining([
        ['sleep', 'ok', undefined],
        ['echo', 'ok', undefined],
        ['fail', 'server_error', 'failed: disk full'],
        ['upper', 'ok', undefined],
        ['nope', 'client_error', 'unknown method nope'],
      ]));
      expect(msgs.every((m) => m.l7Protocol === 'tinyrpc')).toBe(true);
    });
  });
});
