// The three example plugins through the real agent on real traffic:
//  - tinyrpc: a custom binary RPC, parallel on one connection, parsed by a Wasm plugin;
//  - biz-trace-id: two services that pass a transaction id in JSON bodies (no tracing headers)
//    get the same trace id;
//  - http-error-200: an HTTP 200 whose JSON body carries an error becomes a server error.
import { createServer, request } from 'node:http';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TinyRpcClient } from '../../plugins/tinyrpc/demo/client.ts';
import { startServer } from '../../plugins/tinyrpc/demo/server.ts';
import type { OutputLine, RunningAgent } from '../helpers/agent.ts';
import { REPO, freePort, payloadText, startAgent } from '../helpers/agent.ts';

function post(port: number, path: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function listen(handler: Parameters<typeof createServer>[1], port: number): Promise<Server> {
  const s = createServer(handler);
  return new Promise((r) => s.listen(port, '127.0.0.1', () => r(s)));
}

describe('example plugins on live traffic under the agent', () => {
  let agent: RunningAgent;
  const servers: Array<{ close(): void }> = [];
  let rpcPort: number;
  let aPort: number;
  let bPort: number;
  let errPort: number;

  beforeAll(async () => {
    [rpcPort, aPort, bPort, errPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    agent = await startAgent([
      '--filter-port', [rpcPort, aPort, bPort, errPort].join(','),
      '--plugin', ['tinyrpc', 'biz-trace-id', 'http-error-200'].map((p) => join(REPO, 'plugins', p)).join(','),
    ]);
    expect(agent.stderr()).toMatch(/3 plugin hook\(s\)/);
    servers.push(await startServer(rpcPort));
    // B answers; A forwards the same JSON body to B: the only thing tying them is txn_id.
    servers.push(await listen((req, res) => {
      req.resume();
      req.on('end', () => res.end('{"ok":true}'));
    }, bPort));
    servers.push(await listen((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        void post(bPort, '/charge', body).then((r) => res.end(r.body));
      });
    }, aPort));
    servers.push(await listen((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"error":"card declined: insufficient funds"}');
    }, errPort));
  });
  afterAll(async () => {
    for (const s of servers) s.close();
    await agent?.stop();
  });

  it('parses the custom binary RPC with a Wasm plugin, pairing parallel calls by request id', async () => {
    const client = await TinyRpcClient.connect(rpcPort);
    const results = await Promise.all([client.call('sleep', '30'), client.call('echo', 'héllo'), client.call('fail', 'disk full')]);
    client.close();
    expect(results.map((r) => r.id).sort()).toEqual([1, 2, 3]);
    // Responses may arrive coalesced in one read: wait for three messages, not three lines.
    const respLines = (): OutputLine[] => agent.lines.filter((l) => l.l7_protocol === 'tinyrpc' && l.direction === 'ingress' && l.role === 'client');
    for (let i = 0; i < 100 && respLines().flatMap((l) => l.l7 as unknown[]).length < 3; i++) await new Promise((r) => setTimeout(r, 50));
    const lines = respLines();
    const reqs = agent.lines.filter((l) => l.l7_protocol === 'tinyrpc' && l.msg_type === 'request' && l.direction === 'egress');
    const allReqIds = reqs.flatMap((l) => (l.l7 as Array<{ request_id: number }>).map((m) => m.request_id)).sort();
    expect(allReqIds).toEqual([1, 2, 3]);
    const resps = lines.flatMap((l) => l.l7 as Array<{ request_id: number; response_status: string }>);
    expect(resps.find((r) => r.request_id === 3)?.response_status).toBe('server_error');
    expect(resps.find((r) => r.request_id === 2)?.response_status).toBe('ok');
  });

  it('joins two services that pass a transaction id in JSON bodies, with no tracing headers', async () => {
    const r = await post(aPort, '/pay', '{"amount":12.5,"txn_id":"TX-e2e-Zürich-42","user":"a"}');
    expect(r.body).toBe('{"ok":true}');
    const isReq = (l: OutputLine, port: number): boolean => l.direction === 'ingress' && l.local_port === port && l.msg_type === 'request';
    const [aIn] = await agent.waitFor((l) => isReq(l, aPort));
    const [bIn] = await agent.waitFor((l) => isReq(l, bPort));
    expect(payloadText(aIn)).toMatch(/^POST \/pay/);
    expect(aIn.trace_id).toBe('TX-e2e-Zürich-42');
    expect(bIn.trace_id).toBe(aIn.trace_id);
    expect((bIn.attributes as Record<string, string>).biz_id).toBe('TX-e2e-Zürich-42');
  });

  it('marks an HTTP 200 with an error in its JSON body as a server error', async () => {
    const r = await post(errPort, '/checkout', '{}');
    expect(r.status).toBe(200);
    const [resp] = await agent.waitFor((l) => l.local_port === errPort && l.direction === 'egress' && l.msg_type === 'response');
    expect(resp.response_code).toBe(200);
    expect(resp.response_status).toBe('server_error');
    expect(resp.response_exception).toBe('card declined: insufficient funds');
  });
});
