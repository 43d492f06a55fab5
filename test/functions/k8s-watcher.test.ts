import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { K8sWatcher } from '../../functions/tag-encoder/k8s-watcher.ts';
import { MetadataIndex } from '../../functions/tag-encoder/metadata.ts';
import { TagEncoder } from '../../functions/tag-encoder/tag-encoder.ts';
import { tagId } from '../../functions/tag-encoder/tag-id.ts';
import { buildSpans } from '../../functions/span-builder/span-builder.ts';
import { BASE_SLOT, cutBatches, httpReq, httpResp, msg, proc } from './fixtures.ts';
import { K8sFixtureServer, nodeJson, podJson, serviceJson } from './k8s-fixture-server.ts';

const CID_A = 'a'.repeat(64);
const CID_B = 'b'.repeat(64);
const server = new K8sFixtureServer();
const index = new MetadataIndex();
let watcher: K8sWatcher;
const logs: string[] = [];

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  server.apply('nodes', nodeJson('node-1', '192.168.1.10'));
  server.apply('pods', podJson('shop', 'checkout-7d9f8c6b5-x2x9z', { ip: '10.244.0.5', node: 'node-1', containerId: CID_A, labels: { app: 'checkout' }, owner: 'checkout-7d9f8c6b5' }));
  server.apply('services', serviceJson('shop', 'checkout', '10.96.0.20', { app: 'checkout' }));
  const url = await server.start();
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fixture', server: url, skipTLSVerify: true }],
    users: [{ name: 'fixture' }],
    contexts: [{ name: 'fixture', cluster: 'fixture', user: 'fixture' }],
    currentContext: 'fixture',
  });
  watcher = new K8sWatcher(index, kc, { restartDelayMs: 50, log: (l) => logs.push(l) });
  await watcher.start();
});

afterAll(async () => {
  await watcher.stop();
  await server.stop();
});

describe('Kubernetes metadata through @kubernetes/client-node list + watch', () => {
  it('lists pods, services and nodes at start', () => {
    expect(index.size).toEqual({ pods: 1, services: 1, nodes: 1 });
    const pod = index.podByContainer(CID_A);
    expect(pod?.name).toBe('checkout-7d9f8c6b5-x2x9z');
    expect(pod && index.servicesForPod(pod).map((s) => s.name)).toEqual(['checkout']);
    expect(index.serviceByIp('10.96.0.20')?.name).toBe('checkout');
    expect(index.node('node-1')?.labels['topology.kubernetes.io/zone']).toBe('z1');
  });

  it('applies watch events, resumes a dropped watch from its resourceVersion, relists on 410 Gone', async () => {
    await until('pod watch', () => server.watching('pods') === 1);
    server.apply('pods', podJson('shop', 'cart-5c4b3a2-abcde', { ip: '10.244.0.6', node: 'node-1', containerId: CID_B, labels: { app: 'cart' }, owner: 'cart-5c4b3a2' }));
    await until('added pod', () => index.podByIp('10.244.0.6') !== undefined);

    const watchesBefore = server.requests.filter((r) => r.startsWith('GET /api/v1/pods?') && r.includes('watch=true')).length;
    server.dropWatches('pods');
    // Changes made while no watch is open must still arrive: the client resumes from its version.
    server.apply('pods', podJson('shop', 'cart-5c4b3a2-abcde', { ip: '10.244.0.6', node: 'node-1', containerId: CID_B, labels: { app: 'cart', version: 'v2' }, owner: 'cart-5c4b3a2' }));
    await until('re-watch', () => server.watching('pods') === 1, 10_000);
    const rewatch = server.requests.filter((r) => r.startsWith('GET /api/v1/pods?') && r.includes('watch=true'));
    expect(rewatch.length).toBe(watchesBefore + 1);
    expect(rewatch.at(-1)).toMatch(/resourceVersion=100\d/);
    await until('modified pod', () => index.podByContainer(CID_B)?.labels.version === 'v2');

    server.remove('pods', 'shop', 'checkout-7d9f8c6b5-x2x9z');
    await until('deleted pod', () => index.podByContainer(CID_A) === undefined);

    const lists = server.requests.filter((r) => r === 'GET /api/v1/pods').length;
    server.expireWatches('pods');
    server.apply('pods', podJson('shop', 'checkout-7d9f8c6b5-new01', { ip: '10.244.0.7', node: 'node-1', containerId: CID_A, labels: { app: 'checkout' }, owner: 'checkout-7d9f8c6b5' }));
    await until('relist after 410', () => index.podByIp('10.244.0.7') !== undefined, 10_000);
    expect(server.requests.filter((r) => r === 'GET /api/v1/pods').length).toBeGreaterThan(lists);
  });

  it('tags spans of a containerised process with pod, service, node, namespace and the peer', () => {
    const c = { socketId: 9, pid: 4242, processName: 'node', role: 'client' as const, localIp: '10.244.0.7', remoteIp: '10.96.0.20', remotePort: 80 };
    const batches = cutBatches('node-1', [msg(c, 1, 'egress', [httpReq('/cart')]), msg(c, 2, 'ingress', [httpResp(200)])], [proc(4242, 'node', CID_A)], 'node-1');
    const { spans } = buildSpans({ agentId: 'node-1', slot: BASE_SLOT, prev: [], cur: [batches.get(BASE_SLOT)!], next: [] });
    const enc = new TagEncoder({ source: index, now: () => 1_800_000_000 });
    const { names, labels } = enc.encode(spans, 'node-1', [proc(4242, 'node', CID_A)]);
    const s = spans[0];
    expect(s.pod_id).toBe(tagId('pod', 'shop/checkout-7d9f8c6b5-new01'));
    expect(s.service_id).toBe(tagId('service', 'shop/checkout'));
    expect(s.namespace_id).toBe(tagId('namespace', 'shop'));
    expect(s.node_id).toBe(tagId('node', 'node-1'));
    expect(s.container_id).toBe(tagId('container', CID_A));
    expect(s.peer_service_id).toBe(tagId('service', 'shop/checkout'));
    const byId = new Map(names.map((n) => [n.id, n]));
    expect(byId.get(s.pod_id)?.name).toBe('checkout-7d9f8c6b5-new01');
    expect(byId.get(s.pod_id)?.parent_ids).toEqual({ namespace: s.namespace_id, node: s.node_id, service: s.service_id });
    expect(labels.filter((l) => l.id === s.pod_id && l.source === 'label')).toEqual([{ id: s.pod_id, kind: 'pod', source: 'label', key: 'app', value: 'checkout', updated_at: 1_800_000_000 }]);
    // Dictionary rows are not repeated within the refresh interval.
    expect(enc.encode(spans, 'node-1', [proc(4242, 'node', CID_A)]).names).toEqual([]);
  });
});
