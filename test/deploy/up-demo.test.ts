// The README's first command, as a user runs it: `riptide up --demo` brings every part up with a
// progress line each, traces of the uninstrumented demo system appear within a minute, the
// service map shows its edges, and Ctrl-C leaves no children or BPF programs behind.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO, RIPTIDE, freePort } from '../helpers/agent.ts';
import { bpfExists, bpfObjectsOf, childrenOf, isAlive } from '../helpers/proc.ts';

interface Span {
  span_id: string;
  parent_id: string | null;
  side: string;
  l7_protocol: string;
  process_name: string;
  start_time_us: number;
  end_time_us: number;
  response_code: number | null;
}

describe('riptide up --demo', () => {
  let up: ChildProcess;
  let port: number;
  let stderr = '';
  const dataDir = mkdtempSync(join(tmpdir(), 'rt-up-'));
  const api = async <T,>(path: string): Promise<T> => (await (await fetch(`http://127.0.0.1:${port}${path}`)).json()) as T;

  beforeAll(async () => {
    port = await freePort();
    up = spawn(process.execPath, [RIPTIDE, 'up', '--demo', '--data-dir', dataDir, '--port', String(port)], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
    up.stderr!.setEncoding('utf8');
    up.stderr!.on('data', (c: string) => (stderr += c));
    const deadline = Date.now() + 90_000;
    while (!stderr.includes('riptide up: ready') && Date.now() < deadline && up.exitCode === null) await new Promise((r) => setTimeout(r, 200));
    expect(stderr).toContain('riptide up: ready');
  });
  afterAll(() => {
    if (up.exitCode === null) up.kill('SIGKILL');
  });

  it('prints a progress line for each part and one summary line with the UI address', () => {
    for (const part of ['host checks passed', 'ClickHouse ready', 'functions polling', 'query API, UI and plugin marketplace listening', 'agent capturing', 'demo system up']) {
      expect(stderr).toContain(`riptide up: ${part}`);
    }
    expect(stderr).toMatch(new RegExp(`riptide up: ready — open http://127\\.0\\.0\\.1:${port}/`));
  });

  it('shows a whole trace of the demo system, assembled with no headers, within a minute', async () => {
    let trace: Span[] = [];
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const { spans } = await api<{ spans: Span[] }>(`/api/v1/spans?process=demo-gateway&limit=200`);
      const entry = spans.find((s) => s.side === 'server' && s.response_code === 200);
      if (entry) {
        trace = (await api<{ spans: Span[] }>(`/api/v1/traces/${entry.span_id}`)).spans;
        if (trace.some((s) => s.process_name === 'demo-payments' && s.side === 'server')) break;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    const hop = (proc: string, side: string, proto: string): Span | undefined => trace.find((s) => s.process_name === proc && s.side === side && s.l7_protocol === proto);
    const expected: Array<[string, string, string]> = [
      ['demo-loadgen', 'client', 'http1'],
      ['demo-gateway', 'server', 'http1'],
      ['demo-gateway', 'client', 'http2'],
      ['demo-orders', 'server', 'http2'],
      ['demo-orders', 'client', 'dns'],
      ['demo-dns', 'server', 'dns'],
      ['demo-orders', 'client', 'http1'],
      ['demo-payments', 'server', 'http1'],
      ['demo-gateway', 'client', 'http1'],
      ['demo-inventory', 'server', 'http1'],
    ];
    for (const [p, side, proto] of expected) expect(hop(p, side, proto), `${p} ${side} ${proto}`).toBeDefined();
    const byId = new Map(trace.map((s) => [s.span_id, s]));
    const parentOf = (s: Span | undefined): Span | undefined => (s?.parent_id ? byId.get(s.parent_id) : undefined);
    expect(parentOf(hop('demo-gateway', 'server', 'http1'))).toBe(hop('demo-loadgen', 'client', 'http1'));
    expect(parentOf(hop('demo-orders', 'server', 'http2'))).toBe(hop('demo-gateway', 'client', 'http2'));
    expect(parentOf(hop('demo-gateway', 'client', 'http2'))).toBe(hop('demo-gateway', 'server', 'http1'));
    expect(parentOf(hop('demo-orders', 'client', 'dns'))?.process_name).toBe('demo-orders');
    expect(parentOf(hop('demo-payments', 'server', 'http1'))).toBe(hop('demo-orders', 'client', 'http1'));
    // Every child lies inside its parent's time.
    for (const s of trace) {
      const p = parentOf(s);
      if (!p) continue;
      expect(s.start_time_us).toBeGreaterThanOrEqual(p.start_time_us - 1000);
      expect(s.end_time_us).toBeLessThanOrEqual(p.end_time_us + 1000);
    }
  });

  it('draws the service map with RED metrics per edge', async () => {
    const now = Math.floor(Date.now() / 1000);
    const map = await api<{ nodes: Array<{ id: string }>; edges: Array<{ source: string; target: string; protocol: string; requests: number; p50_us: number; p99_us: number }> }>(
      `/api/v1/service-map?start=${now - 600}&end=${now + 60}`,
    );
    const edge = (a: string, b: string, proto: string) => map.edges.find((e) => e.source === a && e.target === b && e.protocol === proto);
    for (const [a, b, proto] of [
      ['demo-loadgen', 'demo-gateway', 'http1'],
      ['demo-gateway', 'demo-orders', 'http2'],
      ['demo-orders', 'demo-dns', 'dns'],
      ['demo-orders', 'demo-payments', 'http1'],
      ['demo-gateway', 'demo-inventory', 'http1'],
    ]) {
      const e = edge(a, b, proto);
      expect(e, `${a} → ${b} (${proto})`).toBeDefined();
      expect(e!.requests).toBeGreaterThan(0);
      expect(e!.p99_us).toBeGreaterThanOrEqual(e!.p50_us);
    }
  });

  it('seeds the marketplace with the example plugins and focuses the UI on the demo', async () => {
    const list = await api<{ plugins: Array<{ name: string }> }>('/api/v1/marketplace/plugins');
    expect(list.plugins.map((p) => p.name)).toEqual(['biz-trace-id', 'http-error-200', 'tinyrpc']);
    const ui = await api<{ focus: { prefixes: string[] } | null }>('/api/v1/ui-config');
    expect(ui.focus?.prefixes).toEqual(['demo-']);
  });

  it('stops on Ctrl-C leaving no child processes and no BPF programs', async () => {
    const kids = childrenOf(up.pid!);
    expect(kids.length).toBeGreaterThanOrEqual(7); // agent, 5 demo services, load generator
    const progs = kids.flatMap((k) => bpfObjectsOf(k).progs);
    expect(progs.length).toBeGreaterThanOrEqual(27);
    const exited = new Promise<number | null>((r) => up.once('exit', (c) => r(c)));
    up.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(stderr).toContain('riptide up: stopped');
    // Children end with their parent (tsx's esbuild service exits when its stdin closes): give them a moment.
    for (let i = 0; i < 30 && kids.some(isAlive); i++) await new Promise((r) => setTimeout(r, 100));
    expect(kids.filter(isAlive).map((k) => `${k} ${readFileSync(`/proc/${k}/cmdline`, 'utf8').replace(/\0/g, ' ')}`)).toEqual([]);
    expect(progs.filter((id) => bpfExists('prog', id))).toEqual([]);
  });

  it('reuses the data on a second start: earlier spans are still there', async () => {
    const again = spawn(process.execPath, [RIPTIDE, 'up', '--data-dir', dataDir, '--port', String(port)], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    again.stderr!.setEncoding('utf8');
    again.stderr!.on('data', (c: string) => (err += c));
    try {
      const deadline = Date.now() + 90_000;
      while (!err.includes('riptide up: ready') && Date.now() < deadline && again.exitCode === null) await new Promise((r) => setTimeout(r, 200));
      expect(err).toContain('riptide up: ready');
      const { spans } = await api<{ spans: Span[] }>('/api/v1/spans?process=demo-gateway&limit=5');
      expect(spans.length).toBeGreaterThan(0);
    } finally {
      const exited = new Promise((r) => again.once('exit', r));
      again.kill('SIGINT');
      await exited;
    }
  }, 120_000); // the start above may take its 90 s deadline: the test's own timeout must outlast it
});
