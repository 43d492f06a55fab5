// The fields the batch format used to drop, end to end under `riptide up`: an MQTT QoS 0 PUBLISH
// (which the broker never answers) captured by the real agent from `mosquitto_pub` against a real
// `mosquitto` must be stored in riptide.spans as `pair_state = one_way` with status `ok` — not as a
// `request_only` timeout — and the protocol version the messages carried (MQTT 3.1.1 / 5.0,
// HTTP/1.1, HTTP/2) must reach the stored span. Needs root, like every capture test.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import { createRequire } from 'node:module';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO, RIPTIDE, freePort } from '../helpers/agent.ts';
import type { RunningServer } from '../protocols/servers.ts';
import { runAsync, startMosquitto } from '../protocols/servers.ts';

const require = createRequire(import.meta.url);

interface Span {
  span_id: string;
  side: string;
  l7_protocol: string;
  pair_state: string;
  version: string;
  request_type: string;
  request_resource: string;
  response_status: string;
  server_port: number;
}

const canCapture = process.getuid?.() === 0;
if (!canCapture) process.stderr.write('one-way-version.test.ts: skipped: capturing needs root (CAP_BPF + CAP_PERFMON)\n');

describe.skipIf(!canCapture)('oneWay and version reach riptide.spans under riptide up', () => {
  let up: ChildProcess;
  let port: number;
  let stderr = '';
  let mqtt: RunningServer;
  let h1: http.Server;
  let h2: http2.Http2Server;
  let kafka: net.Server;
  const dataDir = mkdtempSync(join(tmpdir(), 'rt-oneway-'));

  async function spans(protocol: string): Promise<Span[]> {
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/spans?protocol=${protocol}&limit=1000`);
    return ((await res.json()) as { spans: Span[] }).spans;
  }

  /** Polls the API until `pred` holds for at least `n` spans of `protocol` (one per socket side, usually). */
  async function waitSpans(protocol: string, pred: (s: Span) => boolean, n: number): Promise<Span[]> {
    const deadline = Date.now() + 60_000;
    let found: Span[] = [];
    while (Date.now() < deadline) {
      found = (await spans(protocol)).filter(pred);
      if (found.length >= n) return found;
      await new Promise((r) => setTimeout(r, 500));
    }
    return found;
  }

  beforeAll(async () => {
    mqtt = await startMosquitto();
    h1 = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => h1.listen(0, '127.0.0.1', r));
    h2 = http2.createServer();
    h2.on('stream', (stream) => {
      stream.respond({ ':status': 200 });
      stream.end('ok');
    });
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
    // A broker stand-in that reads and never answers: an acks=0 Produce expects no reply.
    kafka = net.createServer((s) => {
      s.on('data', () => undefined);
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => kafka.listen(0, '127.0.0.1', r));

    port = await freePort();
    up = spawn(process.execPath, [RIPTIDE, 'up', '--data-dir', dataDir, '--port', String(port)], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
    up.stderr!.setEncoding('utf8');
    up.stderr!.on('data', (c: string) => (stderr += c));
    const deadline = Date.now() + 90_000;
    while (!stderr.includes('riptide up: ready') && Date.now() < deadline && up.exitCode === null) await new Promise((r) => setTimeout(r, 200));
    expect(stderr).toContain('riptide up: ready');
  }, 120_000);

  afterAll(async () => {
    if (up && up.exitCode === null) {
      const exited = new Promise((r) => up.once('exit', r));
      up.kill('SIGINT');
      const timer = setTimeout(() => up.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    h1?.close();
    h2?.close();
    kafka?.close();
    await mqtt?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  it('a QoS 0 PUBLISH from mosquitto_pub is a one_way span with status ok, MQTT 3.1.1 and 5 versions stored', async () => {
    await runAsync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(mqtt.port), '-V', 'mqttv311', '-q', '0', '-i', 'ow-311', '-t', 'oneway/v311', '-m', 'hi']);
    await runAsync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(mqtt.port), '-V', 'mqttv5', '-q', '0', '-i', 'ow-5', '-t', 'oneway/v5', '-m', 'hi']);
    const mine = (topic: string) => (s: Span) => s.server_port === mqtt.port && s.request_type === 'PUBLISH' && s.request_resource === topic;
    // Both ends of the socket: mosquitto_pub's client span and mosquitto's server span.
    for (const [topic, version] of [['oneway/v311', '3.1.1'], ['oneway/v5', '5.0']]) {
      const pubs = await waitSpans('mqtt', mine(topic), 2);
      expect(pubs.map((s) => s.side).sort(), `${topic}: ${stderr.slice(-500)}`).toEqual(['client', 'server']);
      for (const s of pubs) expect(s).toMatchObject({ pair_state: 'one_way', response_status: 'ok', version });
    }
  }, 90_000);

  it('a Kafka acks=0 Produce (kafkajs-encoded, v3) is one_way with status ok and api version 3', async () => {
    const kafkaPort = (kafka.address() as net.AddressInfo).port;
    const frame = require('kafkajs/src/protocol/request') as (o: { correlationId: number; clientId: string; request: object }) => Promise<{ buffer: Buffer }>;
    const produce = require('kafkajs/src/protocol/requests/produce/v3/request') as (o: object) => object;
    const req = await frame({ correlationId: 77, clientId: 'oneway-kafkajs', request: produce({ acks: 0, timeout: 1000, topicData: [{ topic: 'oneway', partitions: [{ partition: 0, messages: [{ key: 'k', value: 'v', timestamp: 1700000000000 }] }] }] }) });
    await new Promise<void>((resolve, reject) => {
      const s = net.connect({ port: kafkaPort, host: '127.0.0.1' }, () => s.end(req.buffer));
      s.on('close', () => resolve());
      s.on('error', reject);
    });
    const spansSeen = await waitSpans('kafka', (s) => s.server_port === kafkaPort && s.request_type === 'Produce', 2);
    expect(spansSeen.map((s) => s.side).sort(), stderr.slice(-500)).toEqual(['client', 'server']);
    for (const s of spansSeen) expect(s).toMatchObject({ pair_state: 'one_way', response_status: 'ok', version: '3', request_resource: expect.stringContaining('oneway') });
  }, 90_000);

  it('HTTP/1.1 and HTTP/2 spans carry their version', async () => {
    const h1Port = (h1.address() as net.AddressInfo).port;
    const h2Port = (h2.address() as net.AddressInfo).port;
    await runAsync('curl', ['-sS', '-o', '/dev/null', `http://127.0.0.1:${h1Port}/version-check`]);
    const client = http2.connect(`http://127.0.0.1:${h2Port}`);
    await new Promise<void>((resolve, reject) => {
      const s = client.request({ ':method': 'GET', ':path': '/version-check-2' });
      s.on('data', () => undefined);
      s.on('end', () => resolve());
      s.on('error', reject);
      s.end();
    });
    client.close();
    const one = await waitSpans('http1', (s) => s.server_port === h1Port && s.request_resource === '/version-check', 2);
    expect(one.length).toBeGreaterThanOrEqual(2);
    for (const s of one) expect(s).toMatchObject({ pair_state: 'paired', version: '1.1' });
    const two = await waitSpans('http2', (s) => s.server_port === h2Port && s.request_resource === '/version-check-2', 1);
    expect(two.length).toBeGreaterThanOrEqual(1);
    for (const s of two) expect(s).toMatchObject({ pair_state: 'paired', version: '2' });
  }, 90_000);
});
