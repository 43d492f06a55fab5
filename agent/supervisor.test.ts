// The agent supervisor of `riptide up`, against a stand-in agent (a small node script that speaks
// the agent's contract: the "capturing … metrics on http://…/metrics" line, /healthz, /metrics,
// SIGINT to stop), so every path — exit, 503, hang, failed start, failing restarts — runs in ms.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentSupervisor, mergeMetrics } from './supervisor.ts';
import type { SupervisorOptions } from './supervisor.ts';

const FAKE = `
const http = require('node:http');
const mode = process.env.FAKE_MODE;
if (mode === 'fail') {
  console.error('riptide: plugin p@1.0.0 disabled (wrong_abi): abi 9; capture continues without it');
  console.error('riptide agent: cannot capture: no BTF');
  process.exit(1);
}
console.error('libbpf: loading object');
console.error('riptide: plugin q@1.0.0 disabled (hash_mismatch): module differs');
const s = http.createServer((q, r) => {
  if (q.url === '/healthz') { r.writeHead(mode === 'unhealthy' ? 503 : 200); r.end('{}'); }
  else if (q.url === '/metrics') r.end('# HELP fake_total x\\n# TYPE fake_total counter\\nfake_total 3\\n');
  else { r.writeHead(404); r.end(); }
});
s.listen(0, '127.0.0.1', () => console.error('riptide agent: capturing on 1 tracepoints (all processes); metrics on http://127.0.0.1:' + s.address().port + '/metrics; shipping nowhere'));
process.on('SIGINT', () => { console.error('riptide agent: stopped'); process.exit(0); });
`;

const running: AgentSupervisor[] = [];
const spawned: ChildProcess[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop(2000)));
  for (const c of spawned.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** A supervisor over the stand-in; `modes[i]` is the behaviour of the i-th start (the last repeats). */
function supervise(modes: string[], o: Partial<SupervisorOptions> = {}) {
  const logs: string[] = [];
  const forwarded: string[] = [];
  const starts: number[] = [];
  const sup = new AgentSupervisor({
    spawn: () => {
      const mode = modes[Math.min(starts.length, modes.length - 1)];
      starts.push(Date.now());
      const c = spawn(process.execPath, ['-e', FAKE], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, FAKE_MODE: mode } });
      spawned.push(c);
      return c;
    },
    log: (l) => logs.push(l),
    forward: (l) => forwarded.push(l),
    probeEveryMs: 100,
    probeTimeoutMs: 500,
    unresponsiveMs: 1500,
    backoffMs: 50,
    ...o,
  });
  running.push(sup);
  return { sup, logs, forwarded, starts };
}

async function until(pred: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('AgentSupervisor', () => {
  it('starts the agent, forwards its lines but libbpf\'s, and scrapes its metrics', async () => {
    const { sup, forwarded } = supervise(['ok']);
    expect(sup.problem()).toBe('agent starting');
    expect(await sup.start()).toMatch(/^riptide agent: capturing on 1 tracepoints/);
    expect(sup.problem()).toBeNull();
    expect(forwarded).toEqual(['riptide: plugin q@1.0.0 disabled (hash_mismatch): module differs']);
    expect(await sup.scrape()).toContain('fake_total 3');
  });

  it('restarts an agent that exits, and says "agent down" until it is back', async () => {
    const { sup, logs, starts } = supervise(['ok']);
    await sup.start();
    const first = sup.pid!;
    process.kill(first, 'SIGKILL');
    await until(() => sup.problem() !== null);
    expect(sup.problem()).toMatch(/^agent down: exited unexpectedly \(killed by SIGKILL\); restarting in [\d.]+ s$/);
    expect(await sup.scrape()).toBeNull();
    await until(() => sup.problem() === null && sup.pid !== first);
    expect(starts).toHaveLength(2);
    expect(sup.restarts).toBe(1);
    expect(logs[0]).toBe('the agent exited unexpectedly (killed by SIGKILL); restarting in 0.1 s');
    await until(() => logs.length === 2);
    expect(logs[1]).toMatch(/^agent restarted \(1 so far\): capturing on 1 tracepoints/);
  });

  it('kills and restarts an agent whose health check answers 503', async () => {
    const { sup, logs, starts } = supervise(['unhealthy', 'ok']);
    await sup.start();
    const sick = sup.pid!;
    await until(() => sup.problem()?.startsWith('agent not answering its health check') ?? false, 3000);
    await until(() => starts.length === 2 && sup.problem() === null, 5000);
    expect(sup.pid).not.toBe(sick);
    expect(logs[0]).toMatch(/^the agent was unresponsive \(no healthy answer on its status port for [\d.]+ s\), killed; restarting in 0\.1 s$/);
  });

  it('kills and restarts a hung agent (SIGSTOP) within its unresponsive bound', async () => {
    const { sup, starts } = supervise(['ok']);
    await sup.start();
    const hung = sup.pid!;
    process.kill(hung, 'SIGSTOP');
    const t0 = Date.now();
    await until(() => starts.length === 2, 5000);
    // Killed once silent for 1.5 s (noticed within a probe period and a probe timeout; 1 s of slack for a busy box).
    expect(Date.now() - t0).toBeLessThan(1500 + 100 + 500 + 1000);
    await until(() => sup.problem() === null && sup.pid !== hung);
  });

  it('rejects a failed first start with the agent\'s last words, and does not retry', async () => {
    const { sup, forwarded, starts } = supervise(['fail']);
    await expect(sup.start()).rejects.toThrow(/^cannot capture: no BTF$/);
    expect(forwarded).toEqual(['riptide: plugin p@1.0.0 disabled (wrong_abi): abi 9; capture continues without it']);
    await new Promise((r) => setTimeout(r, 200));
    expect(starts).toHaveLength(1);
  });

  it('rejects when the agent cannot be run at all', async () => {
    const sup = new AgentSupervisor({ spawn: () => spawn('/nonexistent/riptide', [], { stdio: ['ignore', 'ignore', 'pipe'] }), log: () => {} });
    running.push(sup);
    await expect(sup.start()).rejects.toThrow(/^cannot run the agent: spawn \/nonexistent\/riptide ENOENT$/);
  });

  it('keeps retrying a restart that fails, doubling the delay', async () => {
    const { sup, logs, starts } = supervise(['ok', 'fail', 'fail', 'fail', 'ok'], { backoffMs: 200 });
    await sup.start();
    process.kill(sup.pid!, 'SIGKILL');
    await until(() => starts.length === 5 && sup.problem() === null, 15_000);
    const delays = logs.map((l) => /restarting in ([\d.]+) s$/.exec(l)?.[1]).filter(Boolean);
    expect(delays).toEqual(['0.2', '0.4', '0.8', '1.6']);
    expect(logs.filter((l) => l.startsWith('the agent did not start: cannot capture: no BTF; restarting in'))).toHaveLength(3);
  });

  it('stops the agent with SIGINT and does not restart it', async () => {
    const { sup, starts } = supervise(['ok']);
    await sup.start();
    const pid = sup.pid!;
    await sup.stop();
    expect(() => process.kill(pid, 0)).toThrow();
    await new Promise((r) => setTimeout(r, 200));
    expect(starts).toHaveLength(1);
    expect(sup.problem()).toBe('agent stopped');
  });
});

describe('mergeMetrics', () => {
  it('puts the agent\'s families beside ours, the agent\'s winning a name both have', () => {
    const own = '# HELP a_total A\n# TYPE a_total counter\na_total 1\n# HELP shared_total S\n# TYPE shared_total counter\nshared_total 0\n';
    const agent = '# HELP shared_total S\n# TYPE shared_total counter\nshared_total{reason="x"} 7\n# HELP b B\n# TYPE b gauge\nb 2\n';
    expect(mergeMetrics(own, agent)).toBe(
      '# HELP a_total A\n# TYPE a_total counter\na_total 1\n# HELP shared_total S\n# TYPE shared_total counter\nshared_total{reason="x"} 7\n# HELP b B\n# TYPE b gauge\nb 2\n',
    );
    expect(mergeMetrics(own, '')).toBe(own);
  });
});
