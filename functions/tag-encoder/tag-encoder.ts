/**
 * TagEncoder ("smart encoding"): replaces the strings that repeat on every span — host, process,
 * container, pod, service, node, namespace, and the peer's pod and service — by small integer ids
 * ({@link tagId}), and emits the dictionary rows (`riptide.tag_names`, `riptide.tag_labels`) that
 * resolve them at query time. Labels, annotations and custom tags never enter the span rows.
 *
 * Sources, in order: Kubernetes metadata (a {@link MetadataSource}, kept by the K8s watcher) by the
 * process's container id and the peer's IP; otherwise the batch's process metadata (plain host: the
 * service is the process name). Dictionary rows are re-emitted at most once per `refreshSeconds`
 * per id, which keeps live entities inside the dictionary TTL at negligible cost.
 *
 * @example
 *   const enc = new TagEncoder({ source: index });
 *   const { names, labels } = enc.encode(spans, batch.host, batch.processes);
 */
import type { ProcessInfo } from '../../agent/capture/message.ts';
import type { SpanRow } from '../span-builder/span-row.ts';
import type { TagLabelRow, TagNameRow } from '../storage/span-store.ts';
import type { MetadataSource, PodMeta, ServiceMeta } from './metadata.ts';
import { tagId } from './tag-id.ts';
import type { TagKind } from './tag-id.ts';
import { HashTagIds } from './tag-ids.ts';
import type { TagIdSource } from './tag-ids.ts';

export interface TagRows {
  names: TagNameRow[];
  labels: TagLabelRow[];
}

export interface TagEncoderOptions {
  source?: MetadataSource;
  /** Where ids come from (default {@link HashTagIds}; `riptide functions` uses DenseTagIds). */
  ids?: TagIdSource;
  /** Re-emit a dictionary row for an id at most this often (default 3600 s). */
  refreshSeconds?: number;
  /** Unix seconds (tests). */
  now?: () => number;
}

interface OwnTags {
  host_id: number;
  process_id: number;
  container_id: number;
  pod_id: number;
  service_id: number;
  node_id: number;
  namespace_id: number;
}

/**
 * Who a span says it is when it names itself (OTLP resource attributes) instead of being captured:
 * host name, service name, and the Kubernetes namespace when there is one.
 */
export interface ReportedTags {
  host: string;
  service: string;
  namespace: string;
}

interface PeerTags {
  peer_pod_id: number;
  peer_service_id: number;
}

/** A service for a pod: the first Kubernetes Service selecting it, else its workload, else itself. */
export function workloadName(pod: PodMeta): string {
  if (pod.ownerKind === 'ReplicaSet') return pod.ownerName.replace(/-[a-z0-9]{5,10}$/, '');
  return pod.ownerName || pod.name;
}

export class TagEncoder {
  private readonly source?: MetadataSource;
  readonly ids: TagIdSource;
  private readonly refresh: number;
  private readonly now: () => number;
  private readonly written = new Map<number, number>();

  constructor(options: TagEncoderOptions = {}) {
    this.source = options.source;
    this.ids = options.ids ?? new HashTagIds();
    this.refresh = options.refreshSeconds ?? 3600;
    this.now = options.now ?? (() => Math.floor(Date.now() / 1000));
  }

  /** Fill the tag id columns of `spans` in place; return the dictionary rows due for writing. */
  encode(spans: SpanRow[], host: string, processes: readonly ProcessInfo[]): TagRows {
    const out: TagRows = { names: [], labels: [] };
    const now = this.now();
    const procs = new Map<number, ProcessInfo>();
    for (const p of processes) if (!procs.has(p.pid)) procs.set(p.pid, p); // the owner slot's first
    const own = new Map<number, OwnTags>();
    const peers = new Map<string, PeerTags>();
    const hostId = this.name(out, now, 'host', host, host, {});
    for (const s of spans) {
      let o = own.get(s.pid);
      if (o === undefined) {
        o = this.ownTags(out, now, host, hostId, s.pid, s.process_name, procs.get(s.pid));
        own.set(s.pid, o);
      }
      s.host_id = o.host_id;
      s.process_id = o.process_id;
      s.container_id = o.container_id;
      s.pod_id = o.pod_id;
      s.service_id = o.service_id;
      s.node_id = o.node_id;
      s.namespace_id = o.namespace_id;
      if (this.source) {
        const peerIp = s.side === 'client' ? s.server_ip : s.client_ip;
        let p = peers.get(peerIp);
        if (p === undefined) {
          p = this.peerTags(out, now, peerIp);
          peers.set(peerIp, p);
        }
        s.peer_pod_id = p.peer_pod_id;
        s.peer_service_id = p.peer_service_id;
      }
    }
    return out;
  }

  /**
   * Fill host, service and namespace ids of spans that name their service themselves (OTLP:
   * `reported[i]` is who `spans[i]` says it is), with the same ids and dictionary rows as captured
   * spans of that service: the same id source, the same keys (a plain host's service by name, a
   * Kubernetes one as "namespace/name", as {@link TagEncoder.encode} keys them). A service
   * named like the process the agent sees on a plain host, or like the Kubernetes Service (or
   * workload) in the same namespace, gets the captured spans' id.
   */
  encodeReported(spans: SpanRow[], reported: readonly ReportedTags[]): TagRows {
    const out: TagRows = { names: [], labels: [] };
    const now = this.now();
    const ids = new Map<string, { host_id: number; service_id: number; namespace_id: number }>();
    spans.forEach((s, i) => {
      const r = reported[i];
      const k = `${r.host}\n${r.namespace}\n${r.service}`;
      let t = ids.get(k);
      if (t === undefined) {
        const host_id = this.name(out, now, 'host', r.host, r.host, {});
        const namespace_id = r.namespace ? this.name(out, now, 'namespace', r.namespace, r.namespace, {}) : 0;
        const service_id = r.namespace ? this.name(out, now, 'service', `${r.namespace}/${r.service}`, r.service, { namespace: namespace_id }) : this.name(out, now, 'service', r.service, r.service, {});
        t = { host_id, service_id, namespace_id };
        ids.set(k, t);
      }
      s.host_id = t.host_id;
      s.service_id = t.service_id;
      s.namespace_id = t.namespace_id;
    });
    return out;
  }

  private ownTags(out: TagRows, now: number, host: string, hostId: number, pid: number, comm: string, info: ProcessInfo | undefined): OwnTags {
    const name = info?.name || comm;
    const containerKey = info?.containerId ?? '';
    const containerId = containerKey ? this.name(out, now, 'container', containerKey, containerKey.slice(0, 12), { host: hostId }) : 0;
    const pod = containerKey && this.source ? this.source.podByContainer(containerKey) : undefined;
    let podId = 0;
    let serviceId = 0;
    let nodeId = 0;
    let nsId = 0;
    if (pod) {
      const k = this.podTags(out, now, pod);
      podId = k.pod_id;
      serviceId = k.service_id;
      nodeId = k.node_id;
      nsId = k.namespace_id;
    } else if (name) {
      serviceId = this.name(out, now, 'service', name, name, {});
    }
    const processId = this.name(out, now, 'process', `${host}/${pid}/${info?.startTime ?? 0}`, name, { host: hostId, container: containerId, pod: podId }, info?.cmdline ? { cmdline: info.cmdline } : undefined);
    return { host_id: hostId, process_id: processId, container_id: containerId, pod_id: podId, service_id: serviceId, node_id: nodeId, namespace_id: nsId };
  }

  private podTags(out: TagRows, now: number, pod: PodMeta): { pod_id: number; service_id: number; node_id: number; namespace_id: number } {
    const nsId = this.name(out, now, 'namespace', pod.namespace, pod.namespace, {});
    const node = pod.nodeName ? this.source?.node(pod.nodeName) : undefined;
    const nodeId = pod.nodeName ? this.name(out, now, 'node', pod.nodeName, pod.nodeName, {}, undefined, node?.labels, node?.annotations) : 0;
    const svc = this.source?.servicesForPod(pod)[0];
    const serviceId = svc ? this.serviceTag(out, now, svc) : this.name(out, now, 'service', `${pod.namespace}/${workloadName(pod)}`, workloadName(pod), { namespace: nsId });
    const podId = this.name(out, now, 'pod', `${pod.namespace}/${pod.name}`, pod.name, { namespace: nsId, node: nodeId, service: serviceId }, undefined, pod.labels, pod.annotations);
    return { pod_id: podId, service_id: serviceId, node_id: nodeId, namespace_id: nsId };
  }

  private serviceTag(out: TagRows, now: number, svc: ServiceMeta): number {
    const nsId = this.name(out, now, 'namespace', svc.namespace, svc.namespace, {});
    return this.name(out, now, 'service', `${svc.namespace}/${svc.name}`, svc.name, { namespace: nsId }, undefined, svc.labels, svc.annotations);
  }

  private peerTags(out: TagRows, now: number, ip: string): PeerTags {
    const src = this.source as MetadataSource;
    const pod = src.podByIp(ip);
    if (pod) {
      const k = this.podTags(out, now, pod);
      return { peer_pod_id: k.pod_id, peer_service_id: k.service_id };
    }
    const svc = src.serviceByIp(ip);
    if (svc) return { peer_pod_id: 0, peer_service_id: this.serviceTag(out, now, svc) };
    return { peer_pod_id: 0, peer_service_id: 0 };
  }

  /** The id of (kind, key); queues its dictionary rows when they are due. */
  private name(out: TagRows, now: number, kind: TagKind, key: string, name: string, parents: Record<string, number>, hostLabels?: Record<string, string>, labels?: Record<string, string>, annotations?: Record<string, string>): number {
    const id = this.ids.id(kind, key);
    if (id === 0) return 0;
    const last = this.written.get(id);
    if (last !== undefined && now - last < this.refresh) return id;
    this.written.set(id, now);
    if (this.written.size > 200_000) this.written.clear();
    const parent_ids: Record<string, number> = {};
    for (const [k, v] of Object.entries(parents)) if (v) parent_ids[k] = v;
    out.names.push({ id, entity: tagId(kind, key), kind, key, name, parent_ids, updated_at: now });
    const push = (source: TagLabelRow['source'], kv: Record<string, string> | undefined) => {
      for (const [k, v] of Object.entries(kv ?? {})) out.labels.push({ id, kind, source, key: k, value: v, updated_at: now });
    };
    push('host', hostLabels);
    push('label', labels);
    push('annotation', annotations);
    return id;
  }
}
