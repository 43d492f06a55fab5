/**
 * Roles for sockets the kernel side could not classify: connections that predate the agent (a
 * connection pool opened before it started) and sockets a forked server inherited from its parent
 * (PostgreSQL's backends: accept() ran in the postmaster, under another pid). A TCP socket whose
 * local port is listening in the process's network namespace is the server side; any other
 * connected TCP socket is the client side.
 *
 * Listening ports come from /proc/<pid>/net/tcp and tcp6 (state 0A), read per network namespace
 * and refreshed at most every `refreshMs`, so the cost is a few file reads per namespace per second.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import type { SocketRole } from './message.ts';

const LISTEN = '0A';

/** Local ports in LISTEN state in a /proc/net/tcp{,6} table. */
export function listeningPorts(table: string, into = new Set<number>()): Set<number> {
  const lines = table.split('\n');
  for (let i = 1; i < lines.length; i++) {
    const f = lines[i].trim().split(/\s+/);
    if (f.length < 4 || f[3] !== LISTEN) continue;
    const colon = f[1].lastIndexOf(':');
    const port = parseInt(f[1].slice(colon + 1), 16);
    if (Number.isFinite(port)) into.add(port);
  }
  return into;
}

interface Namespace {
  ports: Set<number>;
  readAt: number;
}

export class SocketRoles {
  private readonly byNs = new Map<string, Namespace>();
  private readonly nsOfPid = new Map<number, string>();

  constructor(
    private readonly procRoot = '/proc',
    private readonly refreshMs = 1000,
  ) {}

  /** 'server' when the local port listens in the pid's namespace, else 'client'; 'unknown' if the process is gone. */
  infer(pid: number, localPort: number, now = Date.now()): SocketRole {
    const ns = this.namespace(pid);
    if (ns === undefined) return 'unknown';
    let entry = this.byNs.get(ns);
    // A port we have not seen listening may have just started to: re-read, at most every refreshMs.
    if (!entry || (now - entry.readAt >= this.refreshMs && !entry.ports.has(localPort))) {
      const ports = this.read(pid);
      if (!ports) return 'unknown';
      entry = { ports, readAt: now };
      this.byNs.set(ns, entry);
    }
    return entry.ports.has(localPort) ? 'server' : 'client';
  }

  /** The pid exited or exec'd: its namespace may differ next time. */
  forget(pid: number): void {
    this.nsOfPid.delete(pid);
  }

  private namespace(pid: number): string | undefined {
    let ns = this.nsOfPid.get(pid);
    if (ns === undefined) {
      try {
        ns = readlinkSync(`${this.procRoot}/${pid}/ns/net`);
      } catch {
        return undefined;
      }
      if (this.nsOfPid.size > 65536) this.nsOfPid.clear();
      this.nsOfPid.set(pid, ns);
    }
    return ns;
  }

  private read(pid: number): Set<number> | undefined {
    const ports = new Set<number>();
    let any = false;
    for (const t of ['tcp', 'tcp6']) {
      try {
        listeningPorts(readFileSync(`${this.procRoot}/${pid}/net/${t}`, 'utf8'), ports);
        any = true;
      } catch {
        /* no IPv6, or the process is gone */
      }
    }
    return any ? ports : undefined;
  }
}
