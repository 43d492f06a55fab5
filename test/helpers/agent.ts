/**
 * Runs the real `riptide agent --output -` for a test, filtered to the ports/pids the test owns
 * (BPF sees every process on the machine), and collects the NDJSON lines it prints.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const RIPTIDE = join(REPO, 'agent', 'cli', 'riptide.mjs');

/** One line of `riptide agent --output -`. */
export interface OutputLine {
  ts_ns: number;
  enter_ns: number;
  exit_ns: number;
  pid: number;
  tid: number;
  coroutine_id: number;
  process_name: string;
  cmdline: string;
  container_id: string;
  syscall: string;
  direction: 'egress' | 'ingress';
  socket_id: number;
  family: 'ipv4' | 'ipv6';
  l4: 'tcp' | 'udp';
  local_ip: string;
  local_port: number;
  remote_ip: string;
  remote_port: number;
  role: 'client' | 'server' | 'unknown';
  tcp_seq: number;
  syscall_trace_id: number;
  handoff_trace_id: number;
  bytes: number;
  payload: string;
  [key: string]: unknown;
}

export interface RunningAgent {
  proc: ChildProcess;
  lines: OutputLine[];
  stderr: () => string;
  /** Resolves once at least `n` lines satisfy `pred`, or rejects after `timeoutMs`. */
  waitFor(pred: (l: OutputLine) => boolean, n?: number, timeoutMs?: number): Promise<OutputLine[]>;
  /** SIGINT, then waits for exit; returns the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function payloadText(l: OutputLine): string {
  return Buffer.from(l.payload, 'base64').toString('latin1');
}

export { freePort } from '../../agent/net.ts';

/**
 * Agents still running when the test process ends: a test that failed before its stop() must not
 * leave an agent attached to every syscall of the machine (it would skew every later test and
 * benchmark). SIGKILL closes its BPF fds, which detaches its programs.
 */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/**
 * `tls: true` attaches the TLS uprobes (`--tls`; off by default, as in the agent).
 */
export async function startAgent(args: string[], readyTimeoutMs = 30_000, options: { tls?: boolean } = {}): Promise<RunningAgent> {
  const proc = spawn(process.execPath, [RIPTIDE, 'agent', '--output', '-', '--port', '0', '--exit-with-parent', ...(options.tls ? ['--tls'] : []), ...args], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: OutputLine[] = [];
  let err = '';
  let partial = '';
  const waiters: Array<() => void> = [];
  proc.stdout!.setEncoding('utf8');
  proc.stdout!.on('data', (chunk: string) => {
    partial += chunk;
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const p of parts) if (p) lines.push(JSON.parse(p) as OutputLine);
    for (const w of waiters.splice(0)) w();
  });
  proc.stderr!.setEncoding('utf8');
  live.add(proc);
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  void exited.then(() => live.delete(proc));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`agent not ready after ${readyTimeoutMs} ms; stderr: ${err}`)), readyTimeoutMs);
    proc.stderr!.on('data', (chunk: string) => {
      err += chunk;
      if (err.includes('riptide agent: capturing')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`agent exited with ${code} before capturing; stderr: ${err}`));
    });
  });

  return {
    proc,
    lines,
    stderr: () => err,
    waitFor(pred, n = 1, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const deadline = setTimeout(() => {
          reject(new Error(`timed out waiting for ${n} matching lines; have ${lines.filter(pred).length} of ${lines.length}`));
        }, timeoutMs);
        const check = (): void => {
          const hits = lines.filter(pred);
          if (hits.length >= n) {
            clearTimeout(deadline);
            resolve(hits);
          } else waiters.push(check);
        };
        check();
      });
    },
    async stop(signal: NodeJS.Signals = 'SIGINT') {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill(signal);
      return exited;
    },
  };
}
