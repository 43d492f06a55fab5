import { describe, expect, it } from 'vitest';
import { loadPluginForTest } from '../../sdk-plugin/testing.ts';
import { applyPluginResult } from '../../agent/plugins/types.ts';
import type { L7Message } from '../../agent/protocols/parser.ts';

const dir = new URL('.', import.meta.url).pathname;

describe('http-error-200 plugin', async () => {
  const plugin = await loadPluginForTest(dir);

  it('matches every fixture', async () => {
    const runs = await plugin.runFixtures(dir + 'fixtures');
    expect(runs.length).toBeGreaterThanOrEqual(6);
    for (const r of runs) expect(r.result, r.name).toEqual(r.expect);
  });

  it('turns the parsed 200 into a server error with the message, keeping the code', () => {
    const msg: L7Message = { l7Protocol: 'http1', msgType: 'response', responseCode: 200, responseStatus: 'ok' };
    const r = plugin.httpResponse('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"error":"quota exceeded"}', msg);
    expect(r).not.toBeNull();
    if (r) applyPluginResult(msg, r);
    expect(msg).toMatchObject({ responseCode: 200, responseStatus: 'server_error', responseException: 'quota exceeded' });
  });
});
