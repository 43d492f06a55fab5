/**
 * Two network namespaces joined to the host by veth pairs, the host-side ends wired together only
 * by test/net/relay.py (no bridge, no address, no route on the host): what a node gives two pods,
 * with the wire in user space. Names and the /24 are random per run; nothing leaves the namespaces
 * and the two host-side interfaces. Needs root, iproute2, ethtool.
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Topology {
  /** Namespaces of the server and the client. */
  serverNs: string;
  clientNs: string;
  /** Host-side veth ends (where network capture attaches). */
  serverHostIf: string;
  clientHostIf: string;
  serverIp: string;
  clientIp: string;
  /** argv prefix that runs a command in a namespace. */
  inNs(ns: string, cmd: string[]): string[];
  /** (Re)starts the relay between the two host-side ends. */
  relay(delayMs: number, dropEvery?: number): Promise<void>;
  destroy(): Promise<void>;
}

const RELAY = join(dirname(fileURLToPath(import.meta.url)), 'relay.py');

function run(args: string[]): void {
  execFileSync(args[0], args.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
}

export async function createTopology(): Promise<Topology> {
  const tag = randomBytes(2).toString('hex');
  const net = `10.${200 + (randomBytes(1)[0] % 50)}.${randomBytes(1)[0]}`;
  const t = {
    serverNs: `rt19s${tag}`,
    clientNs: `rt19c${tag}`,
    serverHostIf: `rt19${tag}sh`,
    clientHostIf: `rt19${tag}ch`,
    serverIp: `${net}.1`,
    clientIp: `${net}.2`,
  };
  let relay: ChildProcess | undefined;
  const stopRelay = async (): Promise<void> => {
    const r = relay;
    relay = undefined;
    if (!r || r.exitCode !== null) return;
    const gone = new Promise<void>((res) => r.once('exit', () => res()));
    r.kill('SIGTERM');
    await Promise.race([gone, new Promise((res) => setTimeout(res, 3000))]);
    if (r.exitCode === null) r.kill('SIGKILL');
  };
  const destroy = async (): Promise<void> => {
    await stopRelay();
    for (const args of [['ip', 'link', 'del', t.serverHostIf], ['ip', 'link', 'del', t.clientHostIf], ['ip', 'netns', 'del', t.serverNs], ['ip', 'netns', 'del', t.clientNs]]) {
      try {
        run(args);
      } catch {
        /* already gone */
      }
    }
  };
  try {
    for (const [ns, hostIf, ip] of [[t.serverNs, t.serverHostIf, t.serverIp], [t.clientNs, t.clientHostIf, t.clientIp]] as const) {
      const peer = `${hostIf.slice(0, -1)}p`;
      run(['ip', 'netns', 'add', ns]);
      run(['ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', peer]);
      run(['ip', 'link', 'set', peer, 'netns', ns]);
      // The host end carries no address and no IPv6: the host never answers or routes for the pods.
      run(['sysctl', '-q', '-w', `net.ipv6.conf.${hostIf}.disable_ipv6=1`]);
      run(['ip', 'link', 'set', hostIf, 'promisc', 'on', 'up']);
      run(['ip', 'netns', 'exec', ns, 'ip', 'addr', 'add', `${ip}/24`, 'dev', peer]);
      run(['ip', 'netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
      run(['ip', 'netns', 'exec', ns, 'ip', 'link', 'set', peer, 'up']);
      // Frames cross a user-space relay: they must be complete (checksummed, at most one MTU).
      run(['ip', 'netns', 'exec', ns, 'ethtool', '-K', peer, 'tx', 'off', 'tso', 'off', 'gso', 'off', 'gro', 'off']);
    }
  } catch (err) {
    await destroy();
    throw new Error(`cannot build the namespaces: ${(err as Error & { stderr?: Buffer }).stderr?.toString() || (err as Error).message}`);
  }
  return {
    ...t,
    inNs: (ns, cmd) => ['ip', 'netns', 'exec', ns, ...cmd],
    async relay(delayMs, dropEvery = 0) {
      await stopRelay();
      const r = spawn('python3', [RELAY, t.serverHostIf, t.clientHostIf, String(delayMs), String(dropEvery)], { stdio: ['ignore', 'pipe', 'pipe'] });
      relay = r;
      let err = '';
      r.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
      await new Promise<void>((res, rej) => {
        const timer = setTimeout(() => rej(new Error(`relay did not start: ${err}`)), 10_000);
        r.stdout?.on('data', (d: Buffer) => {
          if (d.toString().includes('relay ready')) {
            clearTimeout(timer);
            res();
          }
        });
        r.once('exit', (code) => rej(new Error(`relay exited ${code}: ${err}`)));
      });
    },
    destroy,
  };
}
