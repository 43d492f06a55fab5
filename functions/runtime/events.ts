/**
 * "An object was created" in the shapes the platforms send: AWS S3 event notifications (also what
 * MinIO and Ceph send), and CloudEvents (structured, batched or binary mode) as Knative, Cloud Run
 * and Eventarc deliver them. Each yields store-relative object keys.
 */

/** The parts of an S3 event notification we read (https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html). */
export interface S3EventRecord {
  eventSource?: string;
  eventName?: string;
  s3?: { bucket?: { name?: string }; object?: { key?: string; size?: number } };
}
export interface S3Event {
  Records?: S3EventRecord[];
}

export interface KeyFilter {
  /** Only events for this bucket (when set). */
  bucket?: string;
  /** The store's key prefix inside the bucket: stripped, and events outside it are ignored. */
  prefix?: string;
}

function relative(key: string, f: KeyFilter): string | null {
  if (!f.prefix) return key;
  const p = f.prefix.endsWith('/') ? f.prefix : f.prefix + '/';
  return key.startsWith(p) ? key.slice(p.length) : null;
}

/** S3 URL-encodes keys in notifications, with '+' for spaces. */
export function decodeS3Key(key: string): string {
  return decodeURIComponent(key.replace(/\+/g, ' '));
}

export function keysFromS3Event(event: unknown, f: KeyFilter = {}): string[] {
  const records = (event as S3Event | null)?.Records;
  if (!Array.isArray(records)) return [];
  const out: string[] = [];
  for (const r of records) {
    if (!r || typeof r !== 'object') continue;
    if (r.eventName && !/^(s3:)?ObjectCreated:/.test(r.eventName)) continue;
    const raw = r.s3?.object?.key;
    if (typeof raw !== 'string') continue;
    if (f.bucket && r.s3?.bucket?.name && r.s3.bucket.name !== f.bucket) continue;
    const k = relative(decodeS3Key(raw), f);
    if (k !== null) out.push(k);
  }
  return out;
}

export interface CloudEvent {
  specversion?: string;
  type?: string;
  source?: string;
  subject?: string;
  id?: string;
  data?: unknown;
}

/** Event types meaning "object created" across providers. */
export function isObjectCreated(type: string | undefined): boolean {
  if (!type) return false;
  return /ObjectCreated|object\.created|object\.v1\.finalized|objectcreated/i.test(type);
}

/** Keys from one CloudEvent: GCS-style data.name, S3-style data.key/object.key or records, else the subject. */
export function keysFromCloudEvent(ce: CloudEvent, f: KeyFilter = {}): string[] {
  if (!isObjectCreated(ce.type)) return [];
  const d = ce.data as Record<string, unknown> | undefined;
  if (d && typeof d === 'object') {
    if (Array.isArray((d as S3Event).Records)) return keysFromS3Event(d, f);
    const obj = d.object as Record<string, unknown> | undefined;
    const bucket = (d.bucket as string | { name?: string } | undefined) ?? undefined;
    const bucketName = typeof bucket === 'string' ? bucket : bucket?.name;
    const raw = (typeof d.name === 'string' && d.name) || (typeof d.key === 'string' && d.key) || (obj && typeof obj.key === 'string' && obj.key) || '';
    if (raw) {
      if (f.bucket && bucketName && bucketName !== f.bucket) return [];
      const k = relative(raw, f);
      return k === null ? [] : [k];
    }
  }
  if (ce.subject) {
    const k = relative(ce.subject.replace(/^objects\//, ''), f);
    return k === null ? [] : [k];
  }
  return [];
}
