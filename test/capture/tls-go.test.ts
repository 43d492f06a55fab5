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
import { GO_TLS_RETURN_PROGRAM, elfFunctions, goTlsProbePoints } from '../../agent/capture/go-tls.ts';
import { TlsLibraries } from '../../agent/capture/tls-libraries.ts';
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
let strippedPort = 0;

/**
 * Lines that are neither plaintext (`tls`) nor whole cleartext handshake/alert records (record
 * types 22/21, which the agent may hand to a `tls` parser before the first ChangeCipherSpec): i.e.
 * ciphertext that reached a parser. Record-layer lines of a socket direction must add up to whole
 * records.
 */
function ciphertextLines(lines: readonly OutputLine[]): string[] {
  const bad: string[] = [];
  const need = new Map<string, number>();
  for (const l of lines) {
    if (l.tls) continue;
    const key = `${l.socket_id} ${l.direction}`;
    const b = Buffer.from(l.payload, 'base64');
    let off = Math.min(need.get(key) ?? 0, l.bytes);
    let left = (need.get(key) ?? 0) - off;
    while (off < l.bytes) {
      if (off + 5 > b.length || (b[off] !== 21 && b[off] !== 22)) {
        bad.push(`${l.pid} ${l.direction} ${l.bytes}`);
        left = 0;
        break;
      }
      const end = off + 5 + b.readUInt16BE(off + 3);
      left = Math.max(0, end - l.bytes);
      off = end;
    }
    need.set(key, left);
  }
  return bad;
}

async function serve(port: number, exe = bin): Promise<number> {
  const p = spawn(exe, ['server', String(port), cert, join(dir, 'key.pem')], { stdio: ['ignore', 'ignore', 'inherit'] });
  procs.push(p);
  await waitForPort(port);
  return p.pid as number;
}

beforeAll(async () => {
  if (!runnable) return;
  dir = mkdtempSync(join(tmpdir(), 'rt-tls-go-'));
  const env = { ...process.env, GOCACHE: join(dir, 'gocache'), GOPATH: join(dir, 'gopath'), GOFLAGS: '-mod=mod', GOPROXY: 'off' };
  bin = join(dir, 'gotls');
  const cwd = join(REPO, 'test', 'capture', 'go-tls');
  execFileSync('go', ['build', '-o', bin, '.'], { cwd, env, stdio: ['ignore', 'ignore', 'inherit'] });
  execFileSync('go', ['build', '-ldflags=-s -w', '-o', `${bin}-stripped`, '.'], { cwd, env, stdio: ['ignore', 'ignore', 'inherit'] });
  cert = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'], { stdio: 'ignore' });
  [beforePort, afterPort, strippedPort] = [await freePort(), await freePort(), await freePort()];
  beforePid = await serve(beforePort);
  agent = await startAgent(['--filter-port', `${beforePort},${afterPort},${strippedPort}`], 30_000, { tls: true });
  expect(agent.stderr()).not.toContain('TLS plaintext not captured:');
  afterPid = await serve(afterPort);
  await serve(strippedPort, `${bin}-stripped`);
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
    const mnemonic = new Map<number, string>();
    for (const l of dump.split('\n')) {
      const m = /^\s+([0-9a-f]+):\t[0-9a-f ]+\t(\S*)/.exec(l);
      if (!m) continue;
      const a = parseInt(m[1], 16);
      starts.add(a);
      mnemonic.set(a, m[2]);
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
    // The probe points: each function's stack-check branch (its first jbe, within the first three
    // instructions) and exactly the RETs objdump lists in it.
    const points = goTlsProbePoints(b);
    expect(points.map((p) => p.symbol)).toEqual(['crypto/tls.(*Conn).Write', 'crypto/tls.(*Conn).Read']);
    for (const p of points) {
      const f = elfFunctions(b, new Set([p.symbol]))[0];
      const toAddr = (off: number): number => off - f.offset + f.address;
      const firstThree = [...starts].filter((a) => a >= f.address && a < f.address + f.size).sort((x, y) => x - y).slice(0, 3);
      expect(firstThree).toContain(toAddr(p.entry));
      expect(mnemonic.get(toAddr(p.entry))).toBe('jbe');
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
    const summarize = (ls: OutputLine[]): string => ls.map((l) => `${l.pid}/${l.tid}/${l.coroutine_id} ${l.direction} ${l.local_port}->${l.remote_port} seq=${l.tcp_seq} tls=${l.tls} ${JSON.stringify(payloadText(l).slice(0, 40))}`).join('\n');
    await a.waitFor((l) => mine(l) && l.direction === 'ingress' && l.remote_port === port && payloadText(l).includes(`go:${paths[2]}`), 1, 15_000).catch((err: Error) => {
      throw new Error(`${err.message}:\n${summarize(a.lines.filter(mine))}`);
    });
    const lines = a.lines.filter(mine);
    const summary = summarize(lines);
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
    expect(ciphertextLines(lines)).toEqual([]);
  }

  it('a Go server started before the agent and a Go client: method, path, status, paired by sequence', async () => {
    await checkPort(beforePort, beforePid, 'before');
  });

  it('a Go server started after the agent (found on exec)', async () => {
    await checkPort(afterPort, afterPid, 'after');
  });

  it('a stripped Go binary: one log line, its traffic stays ciphertext and away from the parsers', async () => {
    const { stdout } = await run(bin, ['client', String(strippedPort), cert, '/stripped']);
    expect(stdout.trim()).toBe('200 go:/stripped');
    const a = agent as RunningAgent;
    const said = a.stderr().split('\n').filter((l) => l.includes(`Go TLS plaintext of ${bin}-stripped not captured`));
    expect(said).toHaveLength(1);
    expect(said[0]).toContain('without a symbol table');
    const port = /metrics on http:\/\/[\d.]+:(\d+)\/metrics/.exec(a.stderr())?.[1];
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    // (≥: other stripped Go programs with crypto/tls may run on this machine; the agent sees them all)
    expect(Number(/^riptide_tls_go_unprobed_total\{reason="no_symtab"\} (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    // The client (symbols) is captured; the stripped server's own end is not, and no ciphertext is parsed.
    await a.waitFor((l) => l.remote_port === strippedPort && l.response_code === 200, 1, 15_000).catch((err: Error) => {
      throw new Error(`${err.message}:\n${a.lines.filter((l) => l.remote_port === strippedPort).map((l) => `${l.pid}/${l.tid}/${l.coroutine_id} ${l.direction} seq=${l.tcp_seq} tls=${l.tls} ${JSON.stringify(payloadText(l).slice(0, 40))}`).join('\n')}`);
    });
    const server = a.lines.filter((l) => l.local_port === strippedPort);
    expect(server.filter((l) => l.tls).map((l) => `${l.direction} ${l.bytes}`)).toEqual([]);
    expect(ciphertextLines(server)).toEqual([]);
  });

  it('attaches once per executable file for two processes and detaches with the last one', () => {
    const links: Array<{ program: string; offset: number }> = [];
    const detached: bigint[] = [];
    const host = {
      uprobePrograms: ['rt_go_tls_write_enter', 'rt_go_tls_read_enter', GO_TLS_RETURN_PROGRAM],
      attachUprobe: (program: string, _path: string, offset: number): bigint => BigInt(links.push({ program, offset })),
      detach: (l: bigint): void => void detached.push(l),
    };
    const libs = new TlsLibraries(host, process.pid, () => {});
    libs.scan(beforePid);
    libs.scan(afterPid);
    const points = goTlsProbePoints(readFileSync(bin));
    expect(links).toHaveLength(points.reduce((n, p) => n + 1 + p.returns.length, 0));
    expect(links.filter((l) => l.program === GO_TLS_RETURN_PROGRAM).map((l) => l.offset)).toEqual(points.flatMap((p) => p.returns));
    expect([...libs.libraries.values()].map((l) => [l.path, l.users.size])).toEqual([[bin, 2]]);
    libs.onExit(beforePid);
    expect(detached).toEqual([]);
    libs.onExit(afterPid);
    expect(detached).toHaveLength(links.length);
    expect(libs.libraries.size).toBe(0);
  });

  it('riptide doctor lists the running Go executable with crypto/tls', async () => {
    const { stdout } = await run(process.execPath, [join(REPO, 'agent', 'cli', 'riptide.mjs'), 'doctor'], { timeout: 60_000 });
    const line = stdout.split('\n').find((l) => l.includes(`${bin}:`));
    expect(line, stdout).toContain('crypto/tls.(*Conn).Write crypto/tls.(*Conn).Read (2 processes now)');
    expect(stdout).toMatch(/yes +uprobes: attach \(\d+ files?: .*Go executables? with crypto\/tls\)/);
  }, 60_000);
});
