/**
 * A tiny stand-in for the Kubernetes API server: list and watch of pods, services and nodes with the
 * real JSON shapes (PodList/ServiceList/NodeList with metadata.resourceVersion, newline-delimited
 * watch events {"type":"ADDED"|"MODIFIED"|"DELETED"|"ERROR","object":{…}}). Tests push events,
 * drop watches, or expire resource versions (410 Gone) to exercise the client's recovery.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

type Obj = { metadata: { name: string; namespace?: string; resourceVersion?: string; [k: string]: unknown }; [k: string]: unknown };
type Resource = 'pods' | 'services' | 'nodes';
const KIND: Record<Resource, string> = { pods: 'Pod', services: 'Service', nodes: 'Node' };

export class K8sFixtureServer {
  private server?: Server;
  private rv = 1000;
  readonly objects: Record<Resource, Map<string, Obj>> = { pods: new Map(), services: new Map(), nodes: new Map() };
  private readonly watchers: Record<Resource, Set<ServerResponse>> = { pods: new Set(), services: new Set(), nodes: new Set() };
  /** Event history, so a watch from resourceVersion N replays what happened after N (as etcd does). */
  private readonly history: Record<Resource, Array<{ rv: number; line: string }>> = { pods: [], services: [], nodes: [] };
  /** Every request line seen, e.g. "GET /api/v1/pods?watch=true&resourceVersion=1003". */
  readonly requests: string[] = [];

  async start(): Promise<string> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((r) => this.server?.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const set of Object.values(this.watchers)) for (const w of set) w.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => this.server?.close(() => r()));
  }

  watching(resource: Resource): number {
    return this.watchers[resource].size;
  }

  private key(o: Obj): string {
    return `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
  }

  /** Add or replace an object (ADDED or MODIFIED to current watchers). */
  apply(resource: Resource, o: Obj): void {
    const existed = this.objects[resource].has(this.key(o));
    const obj = { apiVersion: 'v1', kind: KIND[resource], ...o, metadata: { ...o.metadata, resourceVersion: String(++this.rv) } };
    this.objects[resource].set(this.key(o), obj);
    this.emit(resource, existed ? 'MODIFIED' : 'ADDED', obj);
  }

  remove(resource: Resource, namespace: string | undefined, name: string): void {
    const k = `${namespace ?? ''}/${name}`;
    const o = this.objects[resource].get(k);
    if (!o) return;
    this.objects[resource].delete(k);
    this.emit(resource, 'DELETED', { ...o, metadata: { ...o.metadata, resourceVersion: String(++this.rv) } });
  }

  /** Close every open watch of a resource, as an API server does on timeout or restart. */
  dropWatches(resource: Resource): void {
    for (const w of this.watchers[resource]) w.end();
    this.watchers[resource].clear();
  }

  /** Tell watchers their resource version is too old (watch ERROR 410 Gone, then close). */
  expireWatches(resource: Resource): void {
    const status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'too old resource version', reason: 'Expired', code: 410 };
    for (const w of this.watchers[resource]) {
      w.write(JSON.stringify({ type: 'ERROR', object: status }) + '\n');
      w.end();
    }
    this.watchers[resource].clear();
  }

  private emit(resource: Resource, type: string, object: Obj): void {
    const line = JSON.stringify({ type, object }) + '\n';
    this.history[resource].push({ rv: Number(object.metadata.resourceVersion), line });
    for (const w of this.watchers[resource]) w.write(line);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.requests.push(`${req.method} ${req.url}`);
    const url = new URL(req.url ?? '/', 'http://x');
    const m = /^\/api\/v1\/(pods|services|nodes)$/.exec(url.pathname);
    if (!m) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 }));
      return;
    }
    const resource = m[1] as Resource;
    if (url.searchParams.get('watch') === 'true') {
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      res.flushHeaders();
      const from = Number(url.searchParams.get('resourceVersion') ?? this.rv);
      for (const h of this.history[resource]) if (h.rv > from) res.write(h.line);
      this.watchers[resource].add(res);
      res.on('close', () => this.watchers[resource].delete(res));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: `${KIND[resource]}List`, apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) }, items: [...this.objects[resource].values()] }));
  }
}

export function podJson(ns: string, name: string, opts: { ip: string; node: string; containerId: string; labels: Record<string, string>; owner?: string }): Obj {
  return {
    metadata: {
      name,
      namespace: ns,
      uid: `uid-${name}`,
      labels: opts.labels,
      annotations: { 'kubectl.kubernetes.io/restartedAt': '2026-11-01T00:00:00Z' },
      creationTimestamp: '2026-11-01T00:00:00Z',
      ownerReferences: opts.owner ? [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: opts.owner, uid: `uid-${opts.owner}`, controller: true, blockOwnerDeletion: true }] : undefined,
    },
    spec: { nodeName: opts.node, containers: [{ name: 'app', image: 'registry.local/app:1' }] },
    status: {
      phase: 'Running',
      podIP: opts.ip,
      podIPs: [{ ip: opts.ip }],
      hostIP: '192.168.1.10',
      containerStatuses: [{ name: 'app', ready: true, restartCount: 0, image: 'registry.local/app:1', imageID: 'sha256:abc', containerID: `containerd://${opts.containerId}`, started: true, state: { running: { startedAt: '2026-11-01T00:00:01Z' } } }],
    },
  };
}

export function serviceJson(ns: string, name: string, clusterIp: string, selector: Record<string, string>): Obj {
  return {
    metadata: { name, namespace: ns, uid: `uid-svc-${name}`, labels: { team: 'shop' } },
    spec: { clusterIP: clusterIp, clusterIPs: [clusterIp], selector, ports: [{ port: 80, protocol: 'TCP', targetPort: 8080 }], type: 'ClusterIP' },
    status: { loadBalancer: {} },
  };
}

export function nodeJson(name: string, ip: string): Obj {
  return {
    metadata: { name, uid: `uid-node-${name}`, labels: { 'kubernetes.io/hostname': name, 'topology.kubernetes.io/zone': 'z1' } },
    spec: {},
    status: { addresses: [{ type: 'InternalIP', address: ip }, { type: 'Hostname', address: name }] },
  };
}
