/**
 * Which interfaces network capture attaches to (`--net-interfaces`, issue 19).
 *
 * A pattern is a comma-separated list of interface names or globs (`*`, `?`), and the word
 * `veth`: every host-side end of a veth pair, i.e. a veth whose peer lives in another network
 * namespace — what a Kubernetes node gives each pod. Physical NICs match only when named (or
 * globbed) explicitly. `!name` excludes. The default pattern is `veth`.
 *
 * @example
 *   selectInterfaces(listInterfaces(), parseInterfacePattern('veth,eth0'))
 */
import { execFileSync } from 'node:child_process';

export const DEFAULT_NET_INTERFACES = 'veth';

export interface NetInterface {
  ifindex: number;
  name: string;
  /** Link kind from rtnetlink (`veth`, `bridge`, …; '' for a physical device). */
  kind: string;
  /** True for a veth whose peer is in another namespace (the host-side end). */
  vethHostSide: boolean;
}

export interface InterfacePattern {
  veth: boolean;
  include: RegExp[];
  exclude: RegExp[];
}

function glob(s: string): RegExp {
  return new RegExp(`^${s.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
}

/** Parses a pattern; throws on an empty one or a name no interface could have. */
export function parseInterfacePattern(pattern: string): InterfacePattern {
  const out: InterfacePattern = { veth: false, include: [], exclude: [] };
  const parts = pattern.split(',').map((p) => p.trim()).filter(Boolean);
  if (parts.length === 0) throw new Error('--net-interfaces: empty pattern (give names, globs or "veth")');
  for (const p of parts) {
    const neg = p.startsWith('!');
    const name = neg ? p.slice(1) : p;
    if (!/^[A-Za-z0-9_.:@*?-]{1,15}$/.test(name)) throw new Error(`--net-interfaces: "${p}" is not an interface name or glob`);
    if (!neg && name === 'veth') out.veth = true;
    else (neg ? out.exclude : out.include).push(glob(name));
  }
  return out;
}

/** This namespace's interfaces, from `ip -json -details link show` (iproute2). */
export function listInterfaces(): NetInterface[] {
  const json = execFileSync('ip', ['-json', '-details', 'link', 'show'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 });
  const links = JSON.parse(json) as Array<{ ifindex: number; ifname: string; link_netnsid?: number; linkinfo?: { info_kind?: string } }>;
  return links.map((l) => {
    const kind = l.linkinfo?.info_kind ?? '';
    return { ifindex: l.ifindex, name: l.ifname, kind, vethHostSide: kind === 'veth' && l.link_netnsid !== undefined };
  });
}

export function selectInterfaces(all: readonly NetInterface[], p: InterfacePattern): NetInterface[] {
  return all.filter((i) => {
    if (p.exclude.some((r) => r.test(i.name))) return false;
    return (p.veth && i.vethHostSide) || p.include.some((r) => r.test(i.name));
  });
}
