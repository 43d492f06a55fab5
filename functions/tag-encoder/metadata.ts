/**
 * What the tag encoder knows about the cluster: an in-memory index of pods, services and nodes,
 * kept current by {@link K8sWatcher} (list + watch) and queryable by container id and IP.
 * On a plain host it stays empty and the encoder falls back to the batch's process metadata.
 */

export interface PodMeta {
  uid: string;
  name: string;
  namespace: string;
  nodeName: string;
  ips: string[];
  /** Bare container ids (the "containerd://" scheme stripped). */
  containerIds: string[];
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** The controlling owner (ReplicaSet, StatefulSet, DaemonSet, Job), when any. */
  ownerKind: string;
  ownerName: string;
  hostNetwork: boolean;
}

export interface ServiceMeta {
  name: string;
  namespace: string;
  clusterIps: string[];
  selector: Record<string, string>;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface NodeMeta {
  name: string;
  ips: string[];
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** Read side, as the encoder needs it. */
export interface MetadataSource {
  podByContainer(containerId: string): PodMeta | undefined;
  podByIp(ip: string): PodMeta | undefined;
  serviceByIp(ip: string): ServiceMeta | undefined;
  /** Services whose selector matches the pod, sorted by name. */
  servicesForPod(pod: PodMeta): ServiceMeta[];
  node(name: string): NodeMeta | undefined;
}

const key = (ns: string, name: string): string => `${ns}/${name}`;

export class MetadataIndex implements MetadataSource {
  private readonly pods = new Map<string, PodMeta>();
  private readonly services = new Map<string, ServiceMeta>();
  private readonly nodes = new Map<string, NodeMeta>();
  private byContainer = new Map<string, PodMeta>();
  private byPodIp = new Map<string, PodMeta>();
  private byServiceIp = new Map<string, ServiceMeta>();
  private dirty = false;

  upsertPod(p: PodMeta): void {
    this.pods.set(key(p.namespace, p.name), p);
    this.dirty = true;
  }
  deletePod(namespace: string, name: string): void {
    this.pods.delete(key(namespace, name));
    this.dirty = true;
  }
  upsertService(s: ServiceMeta): void {
    this.services.set(key(s.namespace, s.name), s);
    this.dirty = true;
  }
  deleteService(namespace: string, name: string): void {
    this.services.delete(key(namespace, name));
    this.dirty = true;
  }
  upsertNode(n: NodeMeta): void {
    this.nodes.set(n.name, n);
  }
  deleteNode(name: string): void {
    this.nodes.delete(name);
  }

  get size(): { pods: number; services: number; nodes: number } {
    return { pods: this.pods.size, services: this.services.size, nodes: this.nodes.size };
  }

  private reindex(): void {
    if (!this.dirty) return;
    this.dirty = false;
    this.byContainer = new Map();
    this.byPodIp = new Map();
    this.byServiceIp = new Map();
    for (const p of this.pods.values()) {
      for (const c of p.containerIds) this.byContainer.set(c, p);
      if (!p.hostNetwork) for (const ip of p.ips) this.byPodIp.set(ip, p);
    }
    for (const s of this.services.values()) for (const ip of s.clusterIps) if (ip && ip !== 'None') this.byServiceIp.set(ip, s);
  }

  podByContainer(containerId: string): PodMeta | undefined {
    this.reindex();
    return this.byContainer.get(containerId);
  }
  podByIp(ip: string): PodMeta | undefined {
    this.reindex();
    return this.byPodIp.get(ip);
  }
  serviceByIp(ip: string): ServiceMeta | undefined {
    this.reindex();
    return this.byServiceIp.get(ip);
  }
  servicesForPod(pod: PodMeta): ServiceMeta[] {
    const out: ServiceMeta[] = [];
    for (const s of this.services.values()) {
      if (s.namespace !== pod.namespace) continue;
      const sel = Object.entries(s.selector);
      if (sel.length === 0) continue;
      if (sel.every(([k, v]) => pod.labels[k] === v)) out.push(s);
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
  node(name: string): NodeMeta | undefined {
    return this.nodes.get(name);
  }
}
