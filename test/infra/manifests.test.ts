/**
 * infra/k8s: every manifest parses and matches the Kubernetes object schemas (k8s-schema.ts), and
 * the things that make a deployment work hold: the agent has the host PID namespace, the kernel
 * mounts and the BPF capabilities; probes hit the port and path each role serves; containers run
 * real `riptide` subcommands with flags and RIPTIDE_* variables that the command reads; references
 * between objects (Secrets, ConfigMaps, Services, the autoscaler, RBAC) resolve.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Container, V1PodSpec, V1Probe } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { envName } from '../../agent/cli/config.ts';
import { migrateOptions } from '../../infra/docker/migrate.ts';
import { validateObject } from './k8s-schema.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const K8S = join(ROOT, 'infra', 'k8s');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

interface Manifest {
  file: string;
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  [k: string]: unknown;
}

function loadManifests(): { docs: Manifest[]; parseErrors: string[] } {
  const docs: Manifest[] = [];
  const parseErrors: string[] = [];
  for (const file of readdirSync(K8S).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const d of parseAllDocuments(readFileSync(join(K8S, file), 'utf8'))) {
      if (d.errors.length) parseErrors.push(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
      const js: unknown = d.toJS();
      if (js !== null) docs.push({ ...(js as Manifest), file });
    }
  }
  return { docs, parseErrors };
}

const { docs, parseErrors } = loadManifests();
const objects = docs.filter((d) => d.kind !== 'Kustomization');
const byKind = (kind: string): Manifest[] => objects.filter((d) => d.kind === kind);
const one = (kind: string, name: string): Manifest => {
  const found = objects.find((d) => d.kind === kind && d.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name} in infra/k8s`);
  return found;
};

/** A workload's pod spec, whatever the kind. */
function podSpec(d: Manifest): V1PodSpec | undefined {
  if (['Deployment', 'DaemonSet', 'Job', 'StatefulSet'].includes(d.kind)) return (d.spec?.template as { spec: V1PodSpec }).spec;
  if (d.apiVersion === 'serving.knative.dev/v1' && d.kind === 'Service') return (d.spec?.template as { spec: V1PodSpec }).spec;
  return undefined;
}

interface Workload {
  where: string;
  doc: Manifest;
  pod: V1PodSpec;
  container: V1Container;
}

const workloads: Workload[] = objects.flatMap((doc) => {
  const pod = podSpec(doc);
  return pod ? pod.containers.map((container) => ({ where: `${doc.file} ${doc.kind}/${doc.metadata.name} container ${container.name}`, doc, pod, container })) : [];
});
const riptideContainers = workloads.filter((w) => w.container.image?.startsWith('ghcr.io/riptide/riptide:'));

/** Every variable a container gets, with its value when it is known from the manifests. */
function containerEnv(c: V1Container): Map<string, string | undefined> {
  const env = new Map<string, string | undefined>();
  for (const from of c.envFrom ?? []) {
    const ref = from.configMapRef ?? from.secretRef;
    const kind = from.configMapRef ? 'ConfigMap' : 'Secret';
    const src = objects.find((d) => d.kind === kind && d.metadata.name === ref?.name);
    for (const [k, v] of Object.entries({ ...(src?.data ?? {}), ...(src?.stringData ?? {}) })) env.set((from.prefix ?? '') + k, v);
  }
  for (const e of c.env ?? []) env.set(e.name, e.value);
  return env;
}

/** The standard AWS SDK variables (credentials, region, web identity); anything else must be ours. */
const AWS_ENV = new Set(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_ROLE_ARN', 'AWS_WEB_IDENTITY_TOKEN_FILE']);

/** The `riptide` roles of the stable contract (DESIGN.md) that a container may run. */
const ROLES = ['agent', 'functions', 'query', 'up'] as const;

/** `--help` of a subcommand, or undefined while the CLI does not have it yet. */
async function roleHelp(role: string): Promise<string | undefined> {
  const file = join(ROOT, 'agent', 'cli', 'commands', `${role}.ts`);
  const registered = readFileSync(join(ROOT, 'agent', 'cli', 'main.ts'), 'utf8').includes(`./commands/${role}.ts`);
  if (!existsSync(file) || !registered) return undefined;
  const mod = (await import(file)) as { default: { help: string } };
  return mod.default.help;
}

function flagsOf(help: string): Set<string> {
  return new Set([...help.matchAll(/(?:^|\s)(--[a-z][a-z0-9-]*)/gm)].map((m) => m[1]));
}

function envsOf(help: string): Set<string> {
  return new Set([...help.matchAll(/\[(RIPTIDE_[A-Z0-9_]+)\]/g)].map((m) => m[1]));
}

/** The port a probe reaches, resolving a named port through the container's ports. */
function probePort(p: V1Probe, c: V1Container): number | undefined {
  const port = p.httpGet?.port;
  if (typeof port === 'number') return port;
  return c.ports?.find((x) => x.name === port)?.containerPort;
}

describe('infra/k8s manifests', () => {
  it('parse as YAML', () => {
    expect(parseErrors).toEqual([]);
    expect(docs.length).toBeGreaterThan(10);
  });

  it.each(docs.map((d) => [`${d.file} ${d.kind}/${d.metadata?.name ?? ''}`, d] as const))('%s matches its schema', (_, d) => {
    const { file: _file, ...object } = d;
    expect(validateObject(object)).toEqual([]);
  });

  it('catches the mistakes the schema check exists for', () => {
    const bad = {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'x' },
      spec: {
        selector: {},
        template: { spec: { hostPid: true, containers: [{ name: 'a', ports: [{ containerPort: '80' }], volumeMounts: [{ name: 'v', mountPath: '/x', readonly: true }] }] } },
      },
    };
    expect(validateObject(bad)).toEqual([
      'spec.template.spec.hostPid: unknown field (not in V1PodSpec)',
      'spec.template.spec.containers[0].ports[0].containerPort: expected a number, got string "80"',
      'spec.template.spec.containers[0].volumeMounts[0].readonly: unknown field (not in V1VolumeMount)',
    ]);
    const knative = { apiVersion: 'serving.knative.dev/v1', kind: 'Service', metadata: { name: 'k' }, spec: { template: { spec: { hostPID: true, containers: [{ name: 'c', image: 'i', stdin: true }] } } } };
    expect(validateObject(knative)).toEqual([
      'spec.template.spec.hostPID: V1PodSpec field not accepted here',
      'spec.template.spec.containers[0].stdin: V1Container field not accepted here',
    ]);
  });

  it('put namespaced objects in the riptide namespace', () => {
    const clusterScoped = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding']);
    for (const d of objects) {
      if (clusterScoped.has(d.kind)) expect(d.metadata.namespace, `${d.file} ${d.kind}`).toBeUndefined();
      else expect(d.metadata.namespace, `${d.file} ${d.kind}/${d.metadata.name}`).toBe('riptide');
    }
  });

  it('use one image, tagged with the package version', () => {
    expect(riptideContainers.length).toBeGreaterThanOrEqual(6);
    for (const w of riptideContainers) expect(w.container.image, w.where).toBe(`ghcr.io/riptide/riptide:${VERSION}`);
    const kustomization = docs.find((d) => d.kind === 'Kustomization') as unknown as { images: Array<{ name: string; newTag: string }> };
    expect(kustomization.images).toContainEqual({ name: 'ghcr.io/riptide/riptide', newTag: VERSION });
  });

  it('deploy the default shape from kustomization.yaml; the rest are the documented variants', () => {
    const k = docs.find((d) => d.kind === 'Kustomization') as unknown as { resources: string[] };
    for (const r of k.resources) expect(existsSync(join(K8S, r)), r).toBe(true);
    const unlisted = readdirSync(K8S).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml' && !k.resources.includes(f));
    expect(unlisted.sort()).toEqual(['agent-sidecar.example.yaml', 'functions-http.yaml', 'functions-knative.yaml', 'secrets.example.yaml']);
    // Secrets are created by hand: applying placeholders would overwrite real credentials.
    for (const r of k.resources) expect(objects.filter((d) => d.file === r && d.kind === 'Secret'), r).toEqual([]);
  });

  describe('the agent DaemonSet', () => {
    const ds = one('DaemonSet', 'riptide-agent');
    const pod = podSpec(ds) as V1PodSpec;
    const agent = pod.containers.find((c) => c.args?.[0] === 'agent') as V1Container;

    it('shares the host PID namespace and runs on every node', () => {
      expect(pod.hostPID).toBe(true);
      expect(pod.tolerations).toContainEqual({ operator: 'Exists' });
      expect(pod.nodeSelector ?? {}).toEqual({});
    });

    it('has BPF capabilities, not a privileged container', () => {
      const sc = agent.securityContext;
      expect(sc?.privileged).toBe(false);
      expect(sc?.allowPrivilegeEscalation).toBe(false);
      expect(sc?.capabilities?.drop).toEqual(['ALL']);
      expect(sc?.capabilities?.add).toEqual(expect.arrayContaining(['BPF', 'PERFMON']));
      expect(sc?.capabilities?.add).not.toContain('SYS_ADMIN');
      // Network spans are on by default (host-side veth ends): attaching TC programs needs NET_ADMIN.
      expect(sc?.capabilities?.add).toContain('NET_ADMIN');
      // The preflight accepts root or CAP_BPF + CAP_PERFMON; tracefs is root-only on the host.
      expect(sc?.runAsUser).toBe(0);
    });

    it('mounts kernel BTF, tracefs and a host data dir for the spool', () => {
      const hostPaths = new Map((pod.volumes ?? []).filter((v) => v.hostPath).map((v) => [v.name, v.hostPath?.path]));
      const mounts = new Map((agent.volumeMounts ?? []).map((m) => [m.mountPath, m]));
      for (const path of ['/sys/kernel/btf', '/sys/kernel/tracing']) {
        const m = mounts.get(path);
        expect(m, path).toBeDefined();
        expect(hostPaths.get(m?.name ?? ''), path).toBe(path);
        expect(m?.readOnly, path).toBe(true);
      }
      const dataDir = containerEnv(agent).get('RIPTIDE_DATA_DIR') as string;
      const spool = mounts.get(dataDir);
      expect(spool, `a volume at RIPTIDE_DATA_DIR=${dataDir}`).toBeDefined();
      expect(hostPaths.get(spool?.name ?? '')).toBe('/var/lib/riptide');
    });

    it('probes the status port on loopback, which needs the host network', () => {
      // agent/status-server.ts listens on 127.0.0.1: only a probe from the same network namespace gets there.
      expect(readFileSync(join(ROOT, 'agent', 'status-server.ts'), 'utf8')).toMatch(/host = '127\.0\.0\.1'/);
      expect(pod.hostNetwork).toBe(true);
      expect(pod.dnsPolicy).toBe('ClusterFirstWithHostNet');
      for (const p of [agent.livenessProbe, agent.readinessProbe]) expect(p?.httpGet?.host).toBe('127.0.0.1');
    });
  });

  it('gives every Riptide container requests and limits for CPU and memory', () => {
    for (const w of workloads) {
      for (const k of ['requests', 'limits'] as const) {
        expect(Object.keys(w.container.resources?.[k] ?? {}).sort(), `${w.where} ${k}`).toEqual(['cpu', 'memory']);
      }
    }
  });

  it('probe liveness on /healthz and readiness on /readyz, on the port the role listens on (RIPTIDE_PORT)', () => {
    const probed = riptideContainers.filter((w) => w.container.livenessProbe || w.container.readinessProbe);
    expect(probed.map((w) => w.doc.metadata.name).sort()).toEqual(['riptide-agent', 'riptide-functions', 'riptide-functions', 'riptide-functions-http', 'riptide-query', 'shop-web']);
    for (const w of probed) {
      const port = Number(containerEnv(w.container).get('RIPTIDE_PORT'));
      expect(port, `${w.where}: RIPTIDE_PORT`).toBeGreaterThan(0);
      // A readiness probe on /healthz would send traffic before capture is live / the functions poll.
      expect(w.container.readinessProbe, `${w.where}: readinessProbe`).toBeDefined();
      const probes: Array<[V1Probe | undefined, string]> = [
        [w.container.livenessProbe, '/healthz'],
        [w.container.readinessProbe, '/readyz'],
        [w.container.startupProbe, '/healthz'],
      ];
      for (const [p, path] of probes) {
        if (!p) continue;
        if (p.httpGet) {
          expect(p.httpGet.path, w.where).toBe(path);
          expect(probePort(p, w.container), w.where).toBe(port);
        } else {
          expect(p.exec?.command?.join(' '), w.where).toContain(`http://127.0.0.1:${port}${path}`);
        }
      }
      if (w.container.ports?.length) expect(w.container.ports.map((x) => x.containerPort), w.where).toContain(port);
    }
  });

  it('set no RIPTIDE_* variable to an empty string (it would be taken literally)', () => {
    for (const w of workloads) for (const [k, v] of containerEnv(w.container)) if (k.startsWith('RIPTIDE_')) expect(v, `${w.where} ${k}`).not.toBe('');
  });

  it('take envFrom from ConfigMaps and Secrets that are defined here', () => {
    for (const w of workloads) {
      for (const from of w.container.envFrom ?? []) {
        const kind = from.configMapRef ? 'ConfigMap' : 'Secret';
        const name = (from.configMapRef ?? from.secretRef)?.name ?? '';
        expect(() => one(kind, name), w.where).not.toThrow();
      }
    }
  });

  it('mount writable dirs for the data dir and /tmp when the root filesystem is read-only', () => {
    for (const w of workloads) {
      if (!w.container.securityContext?.readOnlyRootFilesystem) continue;
      const mounts = (w.container.volumeMounts ?? []).filter((m) => !m.readOnly).map((m) => m.mountPath);
      expect(mounts, `${w.where}: tsx keeps its cache in /tmp`).toContain('/tmp');
      const dataDir = containerEnv(w.container).get('RIPTIDE_DATA_DIR');
      if (dataDir) expect(mounts, w.where).toContain(dataDir);
    }
  });

  describe.each(ROLES.filter((r) => riptideContainers.some((w) => w.container.args?.[0] === r)))('containers running `riptide %s`', (role) => {
    const using = riptideContainers.filter((w) => w.container.args?.[0] === role);

    it('use flags and RIPTIDE_* variables the command reads', async (ctx) => {
      const help = await roleHelp(role);
      if (!help) {
        ctx.skip(`riptide ${role} is not in agent/cli yet; its manifests are checked against the contract only`);
        return;
      }
      const flags = flagsOf(help);
      const envs = envsOf(help);
      for (const w of using) {
        for (const a of (w.container.args ?? []).slice(1).filter((x) => x.startsWith('--'))) expect(flags, `${w.where}: riptide ${role} has no ${a}`).toContain(a.split('=')[0]);
        for (const k of containerEnv(w.container).keys()) {
          if (k.startsWith('RIPTIDE_')) expect(envs, `${w.where}: riptide ${role} does not read ${k}`).toContain(k);
          else expect(AWS_ENV, `${w.where}: ${k} is neither ours nor a standard AWS variable`).toContain(k);
        }
      }
    });

    it('only set RIPTIDE_* variables of the stable contract or of the role', () => {
      // Until a role exists in the CLI, its variables must at least be the common ones.
      const common = new Set(['config', 'data-dir', 'port', 'store', 's3-endpoint', 'clickhouse-url'].map(envName));
      for (const w of using) {
        for (const k of containerEnv(w.container).keys()) {
          if (!k.startsWith('RIPTIDE_')) expect(AWS_ENV, `${w.where}: ${k}`).toContain(k);
          else if (role !== 'agent') expect(common, `${w.where}: ${k}`).toContain(k);
        }
      }
    });
  });

  it('run a role of the stable contract in every Riptide container', () => {
    for (const w of riptideContainers) {
      if (w.container.command) continue; // the migration Job, below
      expect(ROLES as readonly string[], w.where).toContain(w.container.args?.[0]);
    }
  });

  describe('the schema-migration Job', () => {
    const job = one('Job', 'riptide-migrate');
    const c = (podSpec(job) as V1PodSpec).containers[0];

    it('runs the migration script from the image working directory, with variables it reads', () => {
      expect(c.command?.slice(0, 3)).toEqual(['node', '--import', 'tsx']);
      expect(c.workingDir).toBe('/opt/riptide');
      expect(existsSync(join(ROOT, c.command?.[3] ?? 'missing'))).toBe(true);
      const envs = new Set(migrateOptions.map((o) => envName(o.name)));
      const env = containerEnv(c);
      expect([...env.keys()].sort()).toEqual(['RIPTIDE_CLICKHOUSE_CLUSTER', 'RIPTIDE_CLICKHOUSE_URL', 'RIPTIDE_TTL_DAYS']);
      for (const k of env.keys()) expect(envs, k).toContain(k);
      expect(readdirSync(join(ROOT, 'infra', 'clickhouse', 'cluster')).length).toBeGreaterThan(0);
    });

    it('migrates for real when run as the Job runs it (embedded chDB standing in for the server)', () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'riptide-migrate-'));
      try {
        const [cmd, ...args] = c.command as string[];
        const run = (): ReturnType<typeof spawnSync> =>
          spawnSync(cmd, [...args, ...(c.args ?? [])], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH, RIPTIDE_DATA_DIR: dataDir, RIPTIDE_TTL_DAYS: '3' } });
        const first = run();
        expect(first.stderr).toBe('');
        expect(first.status).toBe(0);
        expect(first.stdout).toMatch(/^riptide migrate: applied 1, 2/);
        const again = run();
        expect(again.status).toBe(0);
        expect(again.stdout).toMatch(/schema already up to date/);
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  });

  it('resolve Services, the autoscaler and RBAC to objects defined here', () => {
    for (const svc of byKind('Service').filter((s) => s.apiVersion === 'v1')) {
      const selector = (svc.spec as { selector: Record<string, string> }).selector;
      const target = workloads.find((w) => Object.entries(selector).every(([k, v]) => (w.doc.spec?.template as { metadata: { labels: Record<string, string> } }).metadata.labels[k] === v));
      expect(target, `Service ${svc.metadata.name}`).toBeDefined();
      for (const p of (svc.spec as { ports: Array<{ targetPort: string | number }> }).ports) {
        expect(target?.container.ports?.some((x) => x.name === p.targetPort || x.containerPort === p.targetPort), `Service ${svc.metadata.name} → ${p.targetPort}`).toBe(true);
      }
    }
    const hpa = one('HorizontalPodAutoscaler', 'riptide-functions-http');
    const ref = (hpa.spec as { scaleTargetRef: { kind: string; name: string } }).scaleTargetRef;
    const scaled = one(ref.kind, ref.name);
    expect((podSpec(scaled) as V1PodSpec).containers[0].resources?.requests?.cpu, 'CPU utilisation needs a CPU request').toBeDefined();

    const binding = one('ClusterRoleBinding', 'riptide-functions') as unknown as { roleRef: { name: string }; subjects: Array<{ name: string; namespace: string }> };
    const role = one('ClusterRole', binding.roleRef.name) as unknown as { rules: Array<{ resources: string[]; verbs: string[] }> };
    // What functions/tag-encoder/k8s-watcher.ts lists and watches.
    for (const r of ['pods', 'services', 'nodes']) expect(role.rules.some((x) => x.resources.includes(r) && x.verbs.includes('list') && x.verbs.includes('watch')), r).toBe(true);
    expect(() => one('ServiceAccount', binding.subjects[0].name)).not.toThrow();
    for (const w of workloads.filter((x) => x.container.args?.[0] === 'functions')) expect(w.pod.serviceAccountName, w.where).toBe(binding.subjects[0].name);
  });
});
