/**
 * Keeps one agent child process running for `riptide up`: starts it, watches that it stays live
 * (its status server answers `GET /healthz`, which the agent answers 200 only while its ring buffer
 * keeps being drained), and restarts it with backoff when it exits or stops answering. Its stderr
 * lines reach ours (plugin refusals included), libbpf's chatter does not.
 *
 * @example
 *   const sup = new AgentSupervisor({ spawn: () => spawn(node, args, { stdio: ['ignore', 'inherit', 'pipe'] }), log });
 *   await sup.start();          // resolves with the "capturing …" line; rejects if the first start fails
 *   sup.problem();              // null while live, else 'agent down: …' / 'agent starting'
 *   await sup.stop();
 */
import type { ChildProcess } from 'node:child_process';
import { metrics } from './metrics.ts';

const restarts = metrics.counter('riptide_up_agent_restarts_total', 'Agent child restarts by riptide up, by reason (exited, unresponsive, start_failed)');
const agentUp = metrics.gauge('riptide_up_agent_up', '1 while the agent child captures and answers its health check, else 0');
const scrapeErrors = metrics.counter('riptide_up_agent_scrape_errors_total', 'Scrapes of the agent child\'s /metrics that failed (its counters are missing from that scrape)');

export interface SupervisorOptions {
  /** Starts the agent; its stderr must be a pipe. */
  spawn: () => ChildProcess;
  /** Where our own progress lines go (without prefix). */
  log: (line: string) => void;
  /** Where the agent's own stderr lines go. */
  forward?: (line: string) => void;
  /** How long a start may take until "capturing" (default 60 s). */
  startTimeoutMs?: number;
  /** Health probe period (default 1 s) and deadline of one probe (default 2 s). */
  probeEveryMs?: number;
  probeTimeoutMs?: number;
  /** No good health answer for this long: the agent is killed and restarted (default 6 s). */
  unresponsiveMs?: number;
  /** First restart delay, doubled per failed attempt up to maxBackoffMs (defaults 0.5 s, 30 s). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Live this long and the backoff starts over (default 60 s). */
  stableMs?: number;
}

type State = { kind: 'starting'; restart: boolean } | { kind: 'live'; since: number } | { kind: 'down'; reason: string; retryAt: number } | { kind: 'stopped' };

export class AgentSupervisor {
  private state: State = { kind: 'starting', restart: false };
  private child?: ChildProcess;
  private metricsPort?: number;
  private lastOk = 0;
  private probing = false;
  private probeTimer?: NodeJS.Timeout;
  private retryTimer?: NodeJS.Timeout;
  private backoff: number;
  private killedFor?: string;
  private restartCount = 0;
  private readonly o: Required<Omit<SupervisorOptions, 'forward'>> & Pick<SupervisorOptions, 'forward'>;

  constructor(options: SupervisorOptions) {
    this.o = { startTimeoutMs: 60_000, probeEveryMs: 1000, probeTimeoutMs: 2000, unresponsiveMs: 6000, backoffMs: 500, maxBackoffMs: 30_000, stableMs: 60_000, ...options };
    this.backoff = this.o.backoffMs;
  }

  /** The agent's pid while one runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  get restarts(): number {
    return this.restartCount;
  }

  /** Null while the agent captures and answers; otherwise what is wrong, for /readyz and /healthz. */
  problem(): string | null {
    const s = this.state;
    switch (s.kind) {
      case 'live': {
        // Not answering for longer than a probe may take: not ready yet, though not killed yet either.
        const silent = Date.now() - this.lastOk;
        return silent > this.o.probeEveryMs + this.o.probeTimeoutMs ? `agent not answering its health check for ${(silent / 1000).toFixed(1)} s` : null;
      }
      case 'starting':
        return s.restart ? 'agent down: restarting' : 'agent starting';
      case 'down':
        return `agent down: ${s.reason}; restarting in ${Math.max(0, (s.retryAt - Date.now()) / 1000).toFixed(1)} s`;
      case 'stopped':
        return 'agent stopped';
    }
  }

  /** First start: resolves with the agent's "capturing …" line, rejects with its last words. */
  start(): Promise<string> {
    return this.launch(false);
  }

  /** The agent's /metrics text, or null when it is down or does not answer (counted). */
  async scrape(): Promise<string | null> {
    if (this.state.kind !== 'live' || !this.metricsPort) return null;
    try {
      const r = await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`, { signal: AbortSignal.timeout(Math.max(2000, this.o.probeTimeoutMs)) });
      if (r.ok) return await r.text();
    } catch {
      /* counted below */
    }
    scrapeErrors.inc();
    return null;
  }

  /** Stops the agent (SIGINT, SIGKILL after `timeoutMs`); no restart after this. */
  async stop(timeoutMs = 15_000): Promise<void> {
    this.state = { kind: 'stopped' };
    agentUp.set(0);
    clearInterval(this.probeTimer);
    clearTimeout(this.retryTimer);
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGINT');
    child.kill('SIGCONT'); // a stopped agent would not see the SIGINT
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await exited;
    clearTimeout(timer);
  }

  private launch(restart: boolean): Promise<string> {
    this.state = { kind: 'starting', restart };
    this.killedFor = undefined;
    const child = this.o.spawn();
    this.child = child;
    let captured = false;
    let last = '';
    let partial = '';
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        last = `no "capturing" line after ${this.o.startTimeoutMs / 1000} s${last ? ` (last: ${last})` : ''}`;
        child.kill('SIGKILL');
      }, this.o.startTimeoutMs);
      child.stderr?.setEncoding('utf8');
      child.stderr?.on('data', (chunk: string) => {
        const lines = (partial + chunk).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          if (!line || line.startsWith('libbpf:')) continue;
          if (!captured && /^riptide agent: capturing/.test(line)) {
            captured = true;
            clearTimeout(timer);
            this.metricsPort = Number(/metrics on http:\/\/[^/]*:(\d+)\/metrics/.exec(line)?.[1]) || undefined;
            this.live();
            resolve(line);
            continue;
          }
          // Before capture, the agent's own "riptide agent: …" lines are its last words: we report them.
          if (!captured && line.startsWith('riptide agent: ')) last = line.replace(/^riptide agent: /, '');
          else (this.o.forward ?? ((l: string) => process.stderr.write(l + '\n')))(line);
        }
      });
      let gone = false;
      const onGone = (code: number | null, signal: NodeJS.Signals | null): void => {
        if (gone) return;
        gone = true;
        clearTimeout(timer);
        clearInterval(this.probeTimer);
        agentUp.set(0);
        const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
        if (!captured) reject(new Error(last || how));
        if (!captured && !restart) this.state = { kind: 'stopped' }; // the first start failed: the caller gives up
        if (this.state.kind === 'stopped') return;
        if (!captured) {
          restarts.inc({ reason: 'start_failed' });
          this.scheduleRestart(`did not start: ${last || how}`);
        } else if (this.killedFor) {
          restarts.inc({ reason: 'unresponsive' });
          this.scheduleRestart(this.killedFor);
        } else {
          restarts.inc({ reason: 'exited' });
          this.scheduleRestart(`exited unexpectedly (${how})`);
        }
      };
      child.once('exit', onGone);
      // Could not be started at all (no 'exit' follows then).
      child.once('error', (err) => {
        last = `cannot run the agent: ${err.message}`;
        if (child.pid === undefined) onGone(null, null);
      });
    });
  }

  private live(): void {
    const since = Date.now();
    this.state = { kind: 'live', since };
    this.lastOk = since;
    agentUp.set(1);
    clearInterval(this.probeTimer);
    this.probeTimer = setInterval(() => void this.probe(), this.o.probeEveryMs);
  }

  private async probe(): Promise<void> {
    if (this.state.kind !== 'live' || this.probing) return;
    const since = this.state.since;
    this.probing = true;
    try {
      const r = await fetch(`http://127.0.0.1:${this.metricsPort}/healthz`, { signal: AbortSignal.timeout(this.o.probeTimeoutMs) });
      await r.body?.cancel();
      if (r.ok) this.lastOk = Date.now();
    } catch {
      /* no answer: judged below */
    } finally {
      this.probing = false;
    }
    if (this.state.kind !== 'live' || this.state.since !== since) return;
    const now = Date.now();
    if (now - since >= this.o.stableMs) this.backoff = this.o.backoffMs;
    const silent = now - this.lastOk;
    if (silent > this.o.unresponsiveMs && !this.killedFor) {
      this.killedFor = `unresponsive (no healthy answer on its status port for ${(silent / 1000).toFixed(1)} s), killed`;
      this.child?.kill('SIGKILL');
    }
  }

  private scheduleRestart(reason: string): void {
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.o.maxBackoffMs);
    this.state = { kind: 'down', reason, retryAt: Date.now() + delay };
    this.o.log(`the agent ${reason.startsWith('unresponsive') ? 'was ' : ''}${reason}; restarting in ${(delay / 1000).toFixed(1)} s`);
    this.retryTimer = setTimeout(() => {
      if (this.state.kind === 'stopped') return;
      this.restartCount++;
      this.launch(true).then(
        (line) => this.o.log(`agent restarted (${this.restartCount} so far): ${line.replace(/^riptide agent: /, '')}`),
        () => undefined, // the exit handler logged it and scheduled the next attempt
      );
    }, delay);
  }
}

/**
 * Our /metrics text and the agent's, as one exposition: a family the agent has replaces ours of
 * the same name (this process registers some agent metrics it never moves).
 */
export function mergeMetrics(own: string, agent: string): string {
  const families = (text: string): Map<string, string> => {
    const out = new Map<string, string>();
    let name = '';
    for (const line of text.split('\n')) {
      if (!line) continue;
      const help = /^# HELP (\S+)/.exec(line);
      if (help) name = help[1];
      else if (!name && !line.startsWith('#')) name = /^[^{\s]+/.exec(line)?.[0] ?? '';
      out.set(name, (out.get(name) ?? '') + line + '\n');
    }
    return out;
  };
  const ours = families(own);
  const theirs = families(agent);
  for (const [k, v] of theirs) ours.set(k, v);
  return [...ours.values()].join('');
}
