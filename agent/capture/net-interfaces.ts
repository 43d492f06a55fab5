/**
 * Which interfaces network capture attaches to (`--net-interfaces`, issue 19).
 *
 * A pattern is a comma-separated list of interface names or globs (`*`, `?`), and the word
 * `veth`: every host-side end of a veth pair, i.e. a veth whose peer lives in another network
 * namespace and that carries no address of its own (IPv6 link-local aside) — what a Kubernetes
 * node gives each pod: CNIs put the pod's address on the pod-side end, so the end of a pair with
 * an address is a namespace's uplink (a pod's eth0, a namespace playing a host), which is a NIC
 * like any other. Physical NICs and uplinks match only when named (or globbed) explicitly.
 * `!name` excludes. The default pattern is `veth`; `none` turns network capture off.
 *
 * @example
 *   selectInterfaces(listInterfaces(), parseInterfacePattern('veth,eth0'))
 */
import { execFileSync } from 'node:child_process';

export const DEFAULT_NET_INTERFACES = 'veth';
/** The pattern that turns network capture off. */
export const NO_NET_INTERFACES = 'none';

export interface NetInterface {
  ifindex: number;
  name: string;
  /** Link kind from rtnetlink (`veth`, `bridge`, …; '' for a physical device). */
  kind: string;
  /** True for a veth whose peer is in another namespace and that has no address (the host-side end). */
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
  if (parts.length === 0) throw new Error('--net-interfaces: empty pattern (give names, globs, "veth", or "none" for no network capture)');
  if (parts.includes(NO_NET_INTERFACES) && parts.length > 1) throw new Error(`--net-interfaces: "none" (no network capture) cannot be combined with other names`);
  for (const p of parts) {
    const neg = p.startsWith('!');
    const name = neg ? p.slice(1) : p;
    if (!/^[A-Za-z0-9_.:@*?-]{1,15}$/.test(name)) throw new Error(`--net-interfaces: "${p}" is not an interface name or glob`);
    if (!neg && name === 'veth') out.veth = true;
    else (neg ? out.exclude : out.include).push(glob(name));
  }
  return out;
}

/** `ip -json -details address show` as far as {@link interfacesFromIp} reads it. */
export interface IpLink {
  ifindex: number;
  ifname: string;
  link_netnsid?: number;
  linkinfo?: { info_kind?: string };
  addr_info?: Array<{ family?: string; local?: string; scope?: string }>;
}

/** Interfaces from iproute2's JSON (links with their addresses). */
export function interfacesFromIp(links: readonly IpLink[]): NetInterface[] {
  return links.map((l) => {
    const kind = l.linkinfo?.info_kind ?? '';
    // An address of its own (IPv6 link-local aside, which every interface gets) makes it an uplink.
    const addressed = (l.addr_info ?? []).some((a) => !(a.family === 'inet6' && a.scope === 'link'));
    return { ifindex: l.ifindex, name: l.ifname, kind, vethHostSide: kind === 'veth' && l.link_netnsid !== undefined && !addressed };
  });
}

/** This namespace's interfaces, from `ip -json -details address show` (iproute2). */
export function listInterfaces(): NetInterface[] {
  const json = execFileSync('ip', ['-json', '-details', 'address', 'show'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 });
  return interfacesFromIp(JSON.parse(json) as IpLink[]);
}

export function selectInterfaces(all: readonly NetInterface[], p: InterfacePattern): NetInterface[] {
  return all.filter((i) => {
    if (p.exclude.some((r) => r.test(i.name))) return false;
    return (p.veth && i.vethHostSide) || p.include.some((r) => r.test(i.name));
  });
}
