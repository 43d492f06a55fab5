/**
 * Strict validation of Kubernetes manifests against the object models of `@kubernetes/client-node`
 * (generated from the Kubernetes OpenAPI spec, 1.34): every field must be one the model declares,
 * with the declared type. The client's own deserializer silently drops unknown fields, which is
 * exactly the mistake (a misspelt `readOnly`, a field at the wrong level) we want to catch, so this
 * walks the same attribute maps and reports by path instead.
 *
 * Custom resources (Knative Service) are checked against small schemas written here from the
 * published API shape, reusing the core models for the PodSpec parts they inline.
 *
 * @example
 *   validateObject(yamlDoc) // => [] or ['spec.template.spec.containers[0].secrityContext: unknown field']
 */
import * as k8s from '@kubernetes/client-node';

interface Attribute {
  name: string;
  baseName: string;
  type: string;
  format: string;
}

interface ModelClass {
  getAttributeTypeMap(): Attribute[];
}

/** A hand-written schema node: for fields outside the core models, or core models narrowed. */
export type Schema =
  | { kind: 'model'; type: string; allow?: readonly string[]; extra?: Record<string, Schema>; override?: Record<string, Schema>; required?: readonly string[] }
  | { kind: 'object'; fields: Record<string, Schema>; required?: readonly string[] }
  | { kind: 'array'; items: Schema }
  | { kind: 'map'; values: Schema }
  | { kind: 'string' | 'integer' | 'boolean' | 'any' };

/** Fields the API server requires, which the generated attribute maps do not record. */
const REQUIRED: Record<string, readonly string[]> = {
  V1ObjectMeta: [],
  V1PodSpec: ['containers'],
  V1Container: ['name'],
  V1Volume: ['name'],
  V1VolumeMount: ['name', 'mountPath'],
  V1EnvVar: ['name'],
  V1ContainerPort: ['containerPort'],
  V1HTTPGetAction: ['port'],
  V1ExecAction: ['command'],
  V1HostPathVolumeSource: ['path'],
  V1DeploymentSpec: ['selector', 'template'],
  V1DaemonSetSpec: ['selector', 'template'],
  V1JobSpec: ['template'],
  V1ServicePort: ['port'],
  V2HorizontalPodAutoscalerSpec: ['scaleTargetRef', 'maxReplicas'],
  V2CrossVersionObjectReference: ['kind', 'name'],
  V2MetricSpec: ['type'],
  V1PolicyRule: ['verbs'],
  V1RoleRef: ['apiGroup', 'kind', 'name'],
  RbacV1Subject: ['kind', 'name'],
  V1ConfigMapEnvSource: ['name'],
  V1SecretEnvSource: ['name'],
  V1Toleration: [],
  V1NodeSelectorRequirement: ['key', 'operator'],
};

const MODELS = k8s as unknown as Record<string, ModelClass | undefined>;

function model(type: string): ModelClass {
  const m = MODELS[type];
  if (!m || typeof m.getAttributeTypeMap !== 'function') throw new Error(`no @kubernetes/client-node model named ${type}`);
  return m;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Validate `value` against a type name as written in the generated attribute maps. */
function checkType(value: unknown, type: string, format: string, path: string, errors: string[]): void {
  if (type === 'any') return;
  if (type === 'string' || type === 'Date') {
    if (typeof value !== 'string') errors.push(`${path}: expected a string, got ${describe(value)}`);
    return;
  }
  if (type === 'number') {
    if (typeof value !== 'number' || !Number.isFinite(value)) errors.push(`${path}: expected a number, got ${describe(value)}`);
    else if ((format === 'int32' || format === 'int64') && !Number.isInteger(value)) errors.push(`${path}: expected an integer, got ${value}`);
    return;
  }
  if (type === 'boolean') {
    if (typeof value !== 'boolean') errors.push(`${path}: expected true or false, got ${describe(value)}`);
    return;
  }
  if (type === 'IntOrString') {
    if (typeof value !== 'string' && !(typeof value === 'number' && Number.isInteger(value))) errors.push(`${path}: expected an integer or a string, got ${describe(value)}`);
    return;
  }
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (!Array.isArray(value)) errors.push(`${path}: expected a list, got ${describe(value)}`);
    else value.forEach((v, i) => checkType(v, array[1], '', `${path}[${i}]`, errors));
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (!isPlainObject(value)) errors.push(`${path}: expected a mapping, got ${describe(value)}`);
    else for (const [k, v] of Object.entries(value)) checkType(v, map[1], '', `${path}.${k}`, errors);
    return;
  }
  checkSchema(value, { kind: 'model', type }, path, errors);
}

/** Validate `value` against a schema node; errors are pushed as `path: problem`. */
export function checkSchema(value: unknown, schema: Schema, path: string, errors: string[]): void {
  switch (schema.kind) {
    case 'any':
      return;
    case 'string':
    case 'boolean':
      checkType(value, schema.kind, '', path, errors);
      return;
    case 'integer':
      checkType(value, 'number', 'int32', path, errors);
      return;
    case 'array':
      if (!Array.isArray(value)) errors.push(`${path}: expected a list, got ${describe(value)}`);
      else value.forEach((v, i) => checkSchema(v, schema.items, `${path}[${i}]`, errors));
      return;
    case 'map':
      if (!isPlainObject(value)) errors.push(`${path}: expected a mapping, got ${describe(value)}`);
      else for (const [k, v] of Object.entries(value)) checkSchema(v, schema.values, `${path}.${k}`, errors);
      return;
    case 'object': {
      if (!isPlainObject(value)) {
        errors.push(`${path}: expected a mapping, got ${describe(value)}`);
        return;
      }
      for (const r of schema.required ?? []) if (value[r] === undefined) errors.push(`${path}.${r}: required`);
      for (const [k, v] of Object.entries(value)) {
        const field = schema.fields[k];
        if (!field) errors.push(`${path}.${k}: unknown field`);
        else checkSchema(v, field, `${path}.${k}`, errors);
      }
      return;
    }
    case 'model': {
      if (!isPlainObject(value)) {
        errors.push(`${path}: expected a mapping (${schema.type}), got ${describe(value)}`);
        return;
      }
      const attrs = new Map(model(schema.type).getAttributeTypeMap().map((a) => [a.baseName, a]));
      for (const r of schema.required ?? REQUIRED[schema.type] ?? []) if (value[r] === undefined) errors.push(`${path}.${r}: required`);
      for (const [k, v] of Object.entries(value)) {
        const p = path ? `${path}.${k}` : k;
        const own = schema.override?.[k] ?? schema.extra?.[k];
        if (own) {
          checkSchema(v, own, p, errors);
          continue;
        }
        const attr = attrs.get(k);
        if (!attr) errors.push(`${p}: unknown field (not in ${schema.type})`);
        else if (schema.allow && !schema.allow.includes(k)) errors.push(`${p}: ${schema.type} field not accepted here`);
        else checkType(v, attr.type, attr.format, p, errors);
      }
      return;
    }
  }
}

// --- Knative Serving v1 Service (serving.knative.dev/v1), from the published API shape ---------

/** Container fields a Knative revision accepts (others are refused by its webhook). */
const KNATIVE_CONTAINER_FIELDS = [
  'args', 'command', 'env', 'envFrom', 'image', 'imagePullPolicy', 'livenessProbe', 'name', 'ports', 'readinessProbe',
  'resources', 'securityContext', 'startupProbe', 'terminationMessagePath', 'terminationMessagePolicy', 'volumeMounts', 'workingDir',
] as const;

/** PodSpec fields a Knative RevisionSpec inlines without feature flags. */
const KNATIVE_POD_FIELDS = [
  'affinity', 'automountServiceAccountToken', 'containers', 'dnsConfig', 'dnsPolicy', 'enableServiceLinks', 'hostAliases',
  'imagePullSecrets', 'nodeSelector', 'priorityClassName', 'runtimeClassName', 'schedulerName', 'securityContext',
  'serviceAccountName', 'tolerations', 'topologySpreadConstraints', 'volumes',
] as const;

const knativeContainer: Schema = {
  kind: 'model',
  type: 'V1Container',
  allow: KNATIVE_CONTAINER_FIELDS,
  override: {
    // One port per revision; its name picks the protocol: http1 or h2c.
    ports: {
      kind: 'array',
      items: { kind: 'object', fields: { name: { kind: 'string' }, containerPort: { kind: 'integer' }, protocol: { kind: 'string' } } },
    },
  },
};

const knativeRevisionSpec: Schema = {
  kind: 'model',
  type: 'V1PodSpec',
  allow: KNATIVE_POD_FIELDS,
  required: ['containers'],
  override: { containers: { kind: 'array', items: knativeContainer } },
  extra: {
    containerConcurrency: { kind: 'integer' },
    timeoutSeconds: { kind: 'integer' },
    responseStartTimeoutSeconds: { kind: 'integer' },
    idleTimeoutSeconds: { kind: 'integer' },
  },
};

const knativeTemplateMeta: Schema = {
  kind: 'object',
  fields: {
    name: { kind: 'string' },
    namespace: { kind: 'string' },
    labels: { kind: 'map', values: { kind: 'string' } },
    annotations: { kind: 'map', values: { kind: 'string' } },
    finalizers: { kind: 'array', items: { kind: 'string' } },
  },
};

export const knativeServiceSchema: Schema = {
  kind: 'object',
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  fields: {
    apiVersion: { kind: 'string' },
    kind: { kind: 'string' },
    metadata: { kind: 'model', type: 'V1ObjectMeta', required: ['name'] },
    spec: {
      kind: 'object',
      required: ['template'],
      fields: {
        template: { kind: 'object', required: ['spec'], fields: { metadata: knativeTemplateMeta, spec: knativeRevisionSpec } },
        traffic: {
          kind: 'array',
          items: {
            kind: 'object',
            fields: {
              tag: { kind: 'string' },
              revisionName: { kind: 'string' },
              configurationName: { kind: 'string' },
              latestRevision: { kind: 'boolean' },
              percent: { kind: 'integer' },
              url: { kind: 'string' },
            },
          },
        },
      },
    },
  },
};

/** Custom resources validated by a schema of ours, keyed by `apiVersion/kind`. */
const CUSTOM: Record<string, Schema> = {
  'serving.knative.dev/v1/Service': knativeServiceSchema,
  'kustomize.config.k8s.io/v1beta1/Kustomization': {
    kind: 'object',
    required: ['apiVersion', 'kind', 'resources'],
    fields: {
      apiVersion: { kind: 'string' },
      kind: { kind: 'string' },
      namespace: { kind: 'string' },
      resources: { kind: 'array', items: { kind: 'string' } },
      commonLabels: { kind: 'map', values: { kind: 'string' } },
      images: {
        kind: 'array',
        items: { kind: 'object', required: ['name'], fields: { name: { kind: 'string' }, newName: { kind: 'string' }, newTag: { kind: 'string' }, digest: { kind: 'string' } } },
      },
    },
  },
};

/** The client model for a built-in kind: `apps/v1` + `DaemonSet` → `V1DaemonSet`. */
export function modelName(apiVersion: string, kind: string): string {
  const version = apiVersion.split('/').pop() ?? '';
  return version.charAt(0).toUpperCase() + version.slice(1) + kind;
}

/** Validate one manifest document; returns the problems, empty when it is valid. */
export function validateObject(doc: unknown): string[] {
  if (!isPlainObject(doc)) return [`document is ${describe(doc)}, not a mapping`];
  const { apiVersion, kind } = doc;
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') return ['apiVersion and kind must be strings'];
  const errors: string[] = [];
  const custom = CUSTOM[`${apiVersion}/${kind}`];
  if (custom) {
    checkSchema(doc, custom, '', errors);
    return errors.map((e) => e.replace(/^\./, ''));
  }
  const name = modelName(apiVersion, kind);
  if (!MODELS[name]) return [`${apiVersion} ${kind}: no schema known (model ${name} is not in @kubernetes/client-node)`];
  checkSchema(doc, { kind: 'model', type: name, required: ['apiVersion', 'kind', 'metadata'] }, '', errors);
  const meta = doc.metadata;
  if (isPlainObject(meta) && typeof meta.name !== 'string') errors.push('metadata.name: required');
  return errors;
}
