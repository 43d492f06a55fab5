// `riptide up` supervises its agent: killed (SIGKILL) or hung (SIGSTOP), the agent is restarted
// within seconds while /readyz says "agent down" and the query API keeps answering; traffic after
// the restart is captured; the agent's counters are on up's /metrics; a plugin the agent refuses
// is logged on up's stderr, not only counted.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../helpers/agent.ts';
import { isAlive } from '../helpers/proc.ts';
import type { RunningUp } from './up-harness.ts';
import { expectedResources, sendRequests, spansOf, startTarget, startUp } from './up-harness.ts';

/** The value of one sample line of a Prometheus text exposition (`name{labels}` as written). */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('riptide up: agent supervision', () => {
  let up: RunningUp;
  let target: { server: Server; port: number };
  // A plugin whose module does not match its manifest's hash: the agent refuses it at load.
  const pluginDir = mkdtempSync(join(tmpdir(), 'rt-bad-plugin-'));

  beforeAll(async () => {
    const manifest = JSON.parse(readFileSync(join(REPO, 'plugins/biz-trace-id/build/manifest.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(pluginDir, 'manifest.json'), JSON.stringify(manifest));
    writeFileSync(join(pluginDir, manifest.module as string), Buffer.from('\0asm not the module the manifest hashed'));
    target = await startTarget();
    up = await startUp(['--plugin', pluginDir]);
    await up.until('/readyz', (a) => a.status === 200, 90_000);
  });
  afterAll(async () => {
    await up?.stop();
    target?.server.close();
    rmSync(pluginDir, { recursive: true, force: true });
  });

  it('logs the agent\'s plugin refusal on its own stderr', () => {
    expect(up.stderr()).toMatch(/riptide: plugin biz-trace-id@1\.0\.0 disabled \(hash_mismatch\)/);
  });

  it('restarts a killed agent within seconds, saying "agent down" meanwhile, and captures what follows', async () => {
    const first = up.agentPid();
    expect(first).toBeDefined();
    process.kill(first!, 'SIGKILL');
    const killedAt = Date.now();
    const down = await up.until('/readyz', (a) => a.status === 503, 5000);
    expect(down.at(-1)?.body.reasons?.some((r) => r.startsWith('agent down'))).toBe(true);
    // The query side keeps serving while the agent is away: liveness 200 (degraded), the API answers.
    const health = await up.get('/healthz');
    expect(health.status).toBe(200);
    expect(health.body.status).toBe('degraded');
    expect(health.body.reasons?.some((r) => r.startsWith('agent down'))).toBe(true);
    expect((await fetch(`http://127.0.0.1:${up.port}/api/v1/spans?limit=1`)).status).toBe(200);

    await up.until('/readyz', (a) => a.status === 200, 15_000);
    const restartedIn = Date.now() - killedAt;
    process.stderr.write(`up-supervise: killed agent back and ready after ${restartedIn} ms\n`);
    expect(restartedIn).toBeLessThan(10_000);
    const second = up.agentPid();
    expect(second).toBeDefined();
    expect(second).not.toBe(first);
    expect(up.stderr()).toMatch(/riptide up: the agent exited unexpectedly \(killed by SIGKILL\); restarting in/);
    expect(up.stderr()).toMatch(/riptide up: agent restarted \(1 so far\): capturing/);

    const tag = `after-kill-${randomBytes(4).toString('hex')}`;
    await sendRequests(target.port, tag, 20);
    expect(await spansOf(up, target.port, tag, 20)).toEqual(expectedResources(tag, 20));
  });

  it('detects a hung agent (SIGSTOP) within a bounded time and restarts it', async () => {
    const hung = up.agentPid();
    expect(hung).toBeDefined();
    process.kill(hung!, 'SIGSTOP');
    const stoppedAt = Date.now();
    // Not ready once a health probe goes unanswered; killed once it has been silent for 6 s.
    await up.until('/readyz', (a) => a.status === 503, 6000, 100);
    const notReadyIn = Date.now() - stoppedAt;
    while (isAlive(hung!) && Date.now() - stoppedAt < 15_000) await new Promise((r) => setTimeout(r, 100));
    const killedIn = Date.now() - stoppedAt;
    expect(isAlive(hung!), 'the hung agent is still there after 15 s').toBe(false);
    await up.until('/readyz', (a) => a.status === 200, 30_000, 100);
    const backIn = Date.now() - stoppedAt;
    process.stderr.write(`up-supervise: stopped agent not ready after ${notReadyIn} ms, killed after ${killedIn} ms, replaced and ready after ${backIn} ms\n`);
    const next = up.agentPid();
    expect(next).toBeDefined();
    expect(next).not.toBe(hung);
    expect(up.stderr()).toMatch(/riptide up: the agent was unresponsive \(no healthy answer on its status port for [\d.]+ s\), killed; restarting in/);

    const tag = `after-hang-${randomBytes(4).toString('hex')}`;
    await sendRequests(target.port, tag, 20);
    expect(await spansOf(up, target.port, tag, 20)).toEqual(expectedResources(tag, 20));
  });

  it('serves the agent\'s counters on its own /metrics, with the restarts', async () => {
    const r = await fetch(`http://127.0.0.1:${up.port}/metrics`);
    expect(r.status).toBe(200);
    const text = await r.text();
    expect(sample(text, 'riptide_capture_received_total')).toBeGreaterThan(0);
    expect(sample(text, 'riptide_capture_last_drain_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000 - 30);
    expect(sample(text, 'riptide_up_agent_up')).toBe(1);
    expect(sample(text, 'riptide_up_agent_restarts_total{reason="exited"}')).toBe(1);
    expect(sample(text, 'riptide_up_agent_restarts_total{reason="unresponsive"}')).toBe(1);
    // The refused plugin is counted by the agent, and the count reaches up's /metrics too.
    expect(text).toMatch(/^riptide_plugin_\w+\{[^}]*reason="hash_mismatch"[^}]*\} 1$/m);
    // One exposition: no metric family twice.
    const families = text.split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]);
    expect(families.length).toBe(new Set(families).size);
  });

  it('stops on SIGINT with exit code 0 and no agent left', async () => {
    const pid = up.agentPid();
    expect(await up.stop()).toBe(0);
    expect(isAlive(pid!)).toBe(false);
    expect(up.stderr()).toContain('riptide up: stopped');
  });
});
