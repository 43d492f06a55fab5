// Go crypto/tls plaintext (issue 17) on real loopback traffic through the real agent (`riptide agent
// --tls --output -`): a Go net/http TLS server and client built here with Debian's golang-go
// (test/capture/go-tls), HTTP/1.1 with a self-signed certificate made here. One server runs before
// the agent (found by the start-up scan), one starts after (found on exec), the clients after. Every
// end must show method, path and status with tls set, and client and server ends must pair by TCP
// sequence, for each request of a keep-alive connection. The x86-64 decoder that finds the return
// instructions is checked against binutils objdump on the same binary.
import { execFile, execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { elfFunctions, goTlsProbePoints } from '../../agent/capture/go-tls.ts';
import { instructionStarts } from '../../agent/capture/x86-decode.ts';
import type { OutputLine, RunningAgent } from '../helpers/agent.ts';
import { REPO, freePort, payloadText, startAgent } from '../helpers/agent.ts';
import { waitForPort } from '../protocols/recorder.ts';

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const need = ['/usr/bin/go', '/usr/bin/objdump', '/usr/bin/openssl'].filter((f) => !existsSync(f));
const runnable = isRoot && need.length === 0 && process.arch === 'x64';
if (!runnable) process.stderr.write(`Go TLS test skipped: ${!isRoot ? 'needs root for BPF' : process.arch !== 'x64' ? 'Go TLS uprobes are amd64 only' : `needs ${need.join(', ')}`}\n`);

let dir = '';
let bin = '';
let cert = '';
let agent: RunningAgent | undefined;
const procs: ChildProcess[] = [];
let beforePort = 0;
let afterPort = 0;
let beforePid = 0;
let afterPid = 0;

async function serve(port: number): Promise<number> {
  const p = spawn(bin, ['server', String(port), cert, join(dir, 'key.pem')], { stdio: ['ignore', 'ignore', 'inherit'] });
  procs.push(p);
  await waitForPort(port);
  return p.pid as number;
}

beforeAll(async () => {
  if (!runnable) return;
  dir = mkdtempSync(join(tmpdir(), 'rt-tls-go-'));
  const env = { ...process.env, GOCACHE: join(dir, 'gocache'), GOPATH: join(dir, 'gopath'), GOFLAGS: '-mod=mod', GOPROXY: 'off' };
  bin = join(dir, 'gotls');
  execFileSync('go', ['build', '-o', bin, '.'], { cwd: join(REPO, 'test', 'capture', 'go-tls'), env, stdio: ['ignore', 'ignore', 'inherit'] });
  cert = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'], { stdio: 'ignore' });
  [beforePort, afterPort] = [await freePort(), await freePort()];
  beforePid = await serve(beforePort);
  agent = await startAgent(['--filter-port', `${beforePort},${afterPort}`], 30_000, { tls: true });
  expect(agent.stderr()).not.toContain('TLS plaintext not captured');
  afterPid = await serve(afterPort);
}, 240_000);

afterAll(async () => {
  await agent?.stop();
  for (const p of procs) p.kill();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.runIf(runnable)('Go crypto/tls plaintext', () => {
  it('the instruction decoder agrees with objdump on every function of a Go binary', () => {
    const b = readFileSync(bin);
    const dump = execFileSync('objdump', ['-d', '--insn-width=16', bin], { maxBuffer: 1 << 30, encoding: 'utf8' });
    const starts = new Set<number>();
    const bad: number[] = [];
    const rets: number[] = [];
    for (const l of dump.split('\n')) {
      const m = /^\s+([0-9a-f]+):\t[0-9a-f ]+\t(\S*)/.exec(l);
      if (!m) continue;
      const a = parseInt(m[1], 16);
      starts.add(a);
      if (m[2] === '(bad)') bad.push(a);
      if (m[2] === 'ret') rets.push(a);
    }
    let checked = 0;
    let functions = 0;
    const wrong: string[] = [];
    for (const f of elfFunctions(b)) {
      // Data objdump cannot decode either (a marker symbol in crypto/internal/boring) is not code.
      if (bad.some((a) => a >= f.address && a < f.address + f.size)) continue;
      functions++;
      for (const s of instructionStarts(b.subarray(f.offset, f.offset + f.size))) {
        checked++;
        if (!starts.has(f.address + s)) {
          wrong.push(`${f.name}+0x${s.toString(16)}`);
          break;
        }
      }
    }
    expect(wrong).toEqual([]);
    expect(functions).toBeGreaterThan(3000);
    expect(checked).toBeGreaterThan(200_000);
    // The probe points: each function's entry and exactly the RETs objdump lists in it.
    const points = goTlsProbePoints(b);
    expect(points.map((p) => p.symbol)).toEqual(['crypto/tls.(*Conn).Write', 'crypto/tls.(*Conn).Read']);
    for (const p of points) {
      const f = elfFunctions(b, new Set([p.symbol]))[0];
      const toAddr = (off: number): number => off - f.offset + f.address;
      expect(toAddr(p.entry)).toBe(f.address);
      expect(p.returns.map(toAddr)).toEqual(rets.filter((a) => a >= f.address && a < f.address + f.size));
      expect(p.returns.length).toBeGreaterThan(0);
    }
  });

  /** A Go client's keep-alive connection to `port`: every request and response at both ends. */
  async function checkPort(port: number, serverPid: number, tag: string): Promise<void> {
    const paths = [1, 2, 3].map((i) => `/${tag}/${i}`);
    const { stdout } = await run(bin, ['client', String(port), cert, ...paths]);
    expect(stdout.trim().split('\n')).toEqual(paths.map((p) => `200 go:${p}`));
    const a = agent as RunningAgent;
    const mine = (l: OutputLine): boolean => l.local_port === port || l.remote_port === port;
    await a.waitFor((l) => mine(l) && l.direction === 'ingress' && l.remote_port === port && payloadText(l).includes(`go:${paths[2]}`), 1, 15_000);
    const lines = a.lines.filter(mine);
    const summary = lines.map((l) => `${l.pid} ${l.direction} ${l.local_port}->${l.remote_port} tls=${l.tls} ${JSON.stringify(payloadText(l).slice(0, 30))}`).join('\n');
    for (const p of paths) {
      const req = (l: OutputLine): boolean => l.request_type === 'GET' && l.request_resource === p;
      const resp = (l: OutputLine): boolean => l.response_code === 200 && payloadText(l).includes(`go:${p}`);
      const clientReq = lines.find((l) => l.direction === 'egress' && l.remote_port === port && req(l));
      const serverReq = lines.find((l) => l.pid === serverPid && l.direction === 'ingress' && req(l));
      const serverResp = lines.find((l) => l.pid === serverPid && l.direction === 'egress' && resp(l));
      const clientResp = lines.find((l) => l.direction === 'ingress' && l.remote_port === port && resp(l));
      expect([clientReq, serverReq, serverResp, clientResp].map((l) => l?.tls), `${p}:\n${summary}`).toEqual([true, true, true, true]);
      expect(serverReq!.tcp_seq, `${p} request sequence`).toBe(clientReq!.tcp_seq);
      expect(clientResp!.tcp_seq, `${p} response sequence`).toBe(serverResp!.tcp_seq);
      expect(serverReq!.role).toBe('server');
      expect(clientReq!.role).toBe('client');
      // Joined by goroutine: the kernel gave both ends' messages a goroutine id.
      expect(serverReq!.coroutine_id).toBeGreaterThan(0);
    }
    // Ciphertext never reaches the parsers.
    expect(lines.filter((l) => !l.tls).map((l) => `${l.pid} ${l.direction} ${l.bytes}`)).toEqual([]);
  }

  it('a Go server started before the agent and a Go client: method, path, status, paired by sequence', async () => {
    await checkPort(beforePort, beforePid, 'before');
  });

  it('a Go server started after the agent (found on exec)', async () => {
    await checkPort(afterPort, afterPid, 'after');
  });
});
