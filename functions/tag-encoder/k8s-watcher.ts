/**
 * Kubernetes metadata through `@kubernetes/client-node`: one informer (list, then watch from the
 * list's resourceVersion) each for pods, services and nodes, feeding a {@link MetadataIndex}.
 * A watch the server closes is resumed by the informer from the last resourceVersion (a 410 Gone
 * relists); any other error is counted, logged once, and the informer restarted after a delay —
 * the tag encoder keeps working on what it knows meanwhile.
 *
 * @example
 *   const kc = new KubeConfig(); kc.loadFromDefault();      // in-cluster or ~/.kube/config
 *   const watcher = new K8sWatcher(index, kc); await watcher.start();
 */
import { CoreV1Api, makeInformer } from '@kubernetes/client-node';
import type { Informer, KubeConfig, KubernetesObject, V1Node, V1Pod, V1Service } from '@kubernetes/client-node';
import { metrics } from '../../agent/metrics.ts';
import type { MetadataIndex, NodeMeta, PodMeta, ServiceMeta } from './metadata.ts';

const events = metrics.counter('riptide_functions_k8s_events_total', 'Kubernetes watch events applied to the tag metadata, by kind');
const errors = metrics.counter('riptide_functions_k8s_errors_total', 'Kubernetes list/watch failures (the informer is restarted), by kind');

export function podMeta(p: V1Pod): PodMeta {
  const statuses = [...(p.status?.containerStatuses ?? []), ...(p.status?.initContainerStatuses ?? [])];
  const ips = new Set<string>();
  if (p.status?.podIP) ips.add(p.status.podIP);
  for (const x of p.status?.podIPs ?? []) if (x.ip) ips.add(x.ip);
  const owner = (p.metadata?.ownerReferences ?? []).find((o) => o.controller) ?? p.metadata?.ownerReferences?.[0];
  return {
    uid: p.metadata?.uid ?? '',
    name: p.metadata?.name ?? '',
    namespace: p.metadata?.namespace ?? 'default',
    nodeName: p.spec?.nodeName ?? '',
    ips: [...ips],
    containerIds: statuses.map((s) => (s.containerID ?? '').replace(/^[a-z-]+:\/\//, '')).filter(Boolean),
    labels: { ...(p.metadata?.labels ?? {}) },
    annotations: { ...(p.metadata?.annotations ?? {}) },
    ownerKind: owner?.kind ?? '',
    ownerName: owner?.name ?? '',
    hostNetwork: p.spec?.hostNetwork === true,
  };
}

export function serviceMeta(s: V1Service): ServiceMeta {
  const ips = new Set<string>();
  if (s.spec?.clusterIP) ips.add(s.spec.clusterIP);
  for (const ip of s.spec?.clusterIPs ?? []) ips.add(ip);
  return {
    name: s.metadata?.name ?? '',
    namespace: s.metadata?.namespace ?? 'default',
    clusterIps: [...ips],
    selector: { ...(s.spec?.selector ?? {}) },
    labels: { ...(s.metadata?.labels ?? {}) },
    annotations: { ...(s.metadata?.annotations ?? {}) },
  };
}

export function nodeMeta(n: V1Node): NodeMeta {
  return {
    name: n.metadata?.name ?? '',
    ips: (n.status?.addresses ?? []).filter((a) => a.type === 'InternalIP' || a.type === 'ExternalIP').map((a) => a.address),
    labels: { ...(n.metadata?.labels ?? {}) },
    annotations: { ...(n.metadata?.annotations ?? {}) },
  };
}

export interface K8sWatcherOptions {
  /** Delay before restarting an informer after an error (default 2000 ms). */
  restartDelayMs?: number;
  log?: (line: string) => void;
}

export class K8sWatcher {
  private readonly informers: Array<{ kind: string; informer: Informer<KubernetesObject> }> = [];
  private stopped = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly loggedError = new Set<string>();

  constructor(
    private readonly index: MetadataIndex,
    private readonly kc: KubeConfig,
    private readonly options: K8sWatcherOptions = {},
  ) {}

  /** Lists everything once and starts watching; resolves when the first lists are in the index. */
  async start(): Promise<void> {
    const api = this.kc.makeApiClient(CoreV1Api);
    const idx = this.index;
    this.add<V1Pod>('pod', '/api/v1/pods', () => api.listPodForAllNamespaces(), (p) => idx.upsertPod(podMeta(p)), (p) => idx.deletePod(p.metadata?.namespace ?? 'default', p.metadata?.name ?? ''));
    this.add<V1Service>('service', '/api/v1/services', () => api.listServiceForAllNamespaces(), (s) => idx.upsertService(serviceMeta(s)), (s) => idx.deleteService(s.metadata?.namespace ?? 'default', s.metadata?.name ?? ''));
    this.add<V1Node>('node', '/api/v1/nodes', () => api.listNode(), (n) => idx.upsertNode(nodeMeta(n)), (n) => idx.deleteNode(n.metadata?.name ?? ''));
    await Promise.all(this.informers.map(({ kind, informer }) => informer.start().catch((err: unknown) => this.failed(kind, informer, err))));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    await Promise.all(this.informers.map(({ informer }) => informer.stop()));
  }

  private add<T extends KubernetesObject>(kind: string, path: string, list: () => Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>, upsert: (o: T) => void, remove: (o: T) => void): void {
    const informer = makeInformer<T>(this.kc, path, list as never);
    informer.on('add', (o) => {
      events.inc({ kind, type: 'add' });
      upsert(o);
    });
    informer.on('update', (o) => {
      events.inc({ kind, type: 'update' });
      upsert(o);
    });
    informer.on('delete', (o) => {
      events.inc({ kind, type: 'delete' });
      remove(o);
    });
    informer.on('error', (err) => this.failed(kind, informer as unknown as Informer<KubernetesObject>, err));
    this.informers.push({ kind, informer: informer as unknown as Informer<KubernetesObject> });
  }

  private failed(kind: string, informer: Informer<KubernetesObject>, err: unknown): void {
    errors.inc({ kind });
    if (!this.loggedError.has(kind)) {
      this.loggedError.add(kind);
      (this.options.log ?? ((l: string) => process.stderr.write(l + '\n')))(`riptide functions: kubernetes ${kind} watch failed (${err instanceof Error ? err.message : String(err)}); retrying`);
    }
    if (this.stopped) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (this.stopped) return;
      informer.start().catch((e: unknown) => this.failed(kind, informer, e));
    }, this.options.restartDelayMs ?? 2000);
    t.unref();
    this.timers.add(t);
  }
}
