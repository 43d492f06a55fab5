/**
 * The object store behind a URL: `file:///path` (a local folder, the embedded default) or
 * `s3://bucket/prefix` (any S3-compatible store through @aws-sdk/client-s3). Keys are relative to
 * the store root and always use '/'. Batches and plugins go through this one interface.
 *
 * Methods throw on failure; {@link classifyStoreError} tells a caller whether trying again may help.
 *
 * @example
 *   const store = openStore('s3://traces/prod', { s3Endpoint: 'http://127.0.0.1:9000' });
 *   await store.put('batches/…/x.rtb', bytes);
 *   const keys = await store.list('batches/2026-11-21/05/');
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CopyObjectCommand, DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

export interface ListOptions {
  /** Only keys strictly after this one (lexicographic), like S3's StartAfter. */
  startAfter?: string;
  /** At most this many keys. */
  limit?: number;
}

export interface ObjectStore {
  /** The store's URL, for logs (never holds credentials). */
  readonly url: string;
  /** Write an object; replaces an existing one atomically (readers see the old or the new bytes). */
  put(key: string, body: Uint8Array): Promise<void>;
  /** The object's bytes, or undefined when there is no such key. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Keys under `prefix`, sorted. */
  list(prefix: string, options?: ListOptions): Promise<string[]>;
  /** Remove an object; no error when it is already gone. */
  delete(key: string): Promise<void>;
  /** Copy an object to another key (server-side where the store can). */
  copy(fromKey: string, toKey: string): Promise<void>;
  close(): Promise<void>;
}

export class StoreConfigError extends Error {
  override readonly name = 'StoreConfigError';
}

export class InvalidKeyError extends Error {
  override readonly name = 'InvalidKeyError';
}

const TEMP_MARK = '.rt-tmp-';

function checkKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > 1024) throw new InvalidKeyError(`invalid object key ${JSON.stringify(key)}`);
  if (key.startsWith('/') || key.includes('\\') || key.includes('\0')) throw new InvalidKeyError(`invalid object key ${JSON.stringify(key)}`);
  for (const seg of key.split('/')) {
    if (seg === '' || seg === '.' || seg === '..' || seg.startsWith(TEMP_MARK)) throw new InvalidKeyError(`invalid object key ${JSON.stringify(key)}`);
  }
}

function errnoOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

// ---------------------------------------------------------------------------------------------

/** A folder as an object store. Writes go to a temp file and are renamed into place (atomic). */
export class FileStore implements ObjectStore {
  readonly url: string;
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.url = `file://${this.root}`;
  }

  private path(key: string): string {
    checkKey(key);
    return join(this.root, ...key.split('/'));
  }

  async put(key: string, body: Uint8Array): Promise<void> {
    const path = this.path(key);
    const tmp = join(dirname(path), `${TEMP_MARK}${randomBytes(6).toString('hex')}`);
    await mkdir(dirname(path), { recursive: true });
    try {
      await writeFile(tmp, body);
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    try {
      const b = await readFile(this.path(key));
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    } catch (err) {
      const code = errnoOf(err);
      if (code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR') return undefined;
      throw err;
    }
  }

  async list(prefix: string, options: ListOptions = {}): Promise<string[]> {
    // Walk only the deepest folder the prefix names, not the whole tree.
    const cut = prefix.lastIndexOf('/');
    const dirKey = cut >= 0 ? prefix.slice(0, cut) : '';
    if (dirKey !== '') checkKey(dirKey);
    const out: string[] = [];
    await this.walk(dirKey, prefix, out);
    out.sort();
    let keys = options.startAfter !== undefined ? out.filter((k) => k > (options.startAfter as string)) : out;
    if (options.limit !== undefined) keys = keys.slice(0, options.limit);
    return keys;
  }

  private async walk(dirKey: string, prefix: string, out: string[]): Promise<void> {
    let entries;
    try {
      entries = await readdir(dirKey === '' ? this.root : join(this.root, ...dirKey.split('/')), { withFileTypes: true });
    } catch (err) {
      const code = errnoOf(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw err;
    }
    for (const e of entries) {
      if (e.name.startsWith(TEMP_MARK)) continue;
      const key = dirKey === '' ? e.name : `${dirKey}/${e.name}`;
      if (e.isDirectory()) {
        // Descend only where keys under this folder can still match the prefix.
        if (key.startsWith(prefix) || prefix.startsWith(key + '/')) await this.walk(key, prefix, out);
      } else if (e.isFile() && key.startsWith(prefix)) {
        out.push(key);
      }
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }

  async copy(fromKey: string, toKey: string): Promise<void> {
    const bytes = await this.get(fromKey);
    if (bytes === undefined) throw Object.assign(new Error(`copy: no such key ${fromKey}`), { code: 'ENOENT' });
    await this.put(toKey, bytes);
  }

  async close(): Promise<void> {}
}

// ---------------------------------------------------------------------------------------------

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket ('' or ending in '/'). */
  prefix?: string;
  /** Endpoint URL of an S3-compatible server (MinIO, s3rver, …); path-style addressing is then used. */
  endpoint?: string;
  /** Default: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1. */
  region?: string;
  /** Default: the SDK's chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profiles, instance roles). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Default: true when an endpoint is given. */
  forcePathStyle?: boolean;
  /** Per-request time limit (ms), so a hung connection cannot stall shipping. Default 30 s. */
  requestTimeoutMs?: number;
  /** SDK-level attempts per call (default 2; the spool adds its own retries with backoff). */
  maxAttempts?: number;
}

function encodeCopySource(bucket: string, key: string): string {
  return `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
}

/** An S3 bucket (or a prefix in one) as an object store. */
export class S3Store implements ObjectStore {
  readonly url: string;
  readonly bucket: string;
  readonly prefix: string;
  private readonly client: S3Client;
  private readonly timeoutMs: number;

  constructor(options: S3StoreOptions) {
    this.bucket = options.bucket;
    const p = (options.prefix ?? '').replace(/^\/+/, '');
    this.prefix = p === '' || p.endsWith('/') ? p : p + '/';
    this.url = `s3://${this.bucket}/${this.prefix}`;
    this.timeoutMs = options.requestTimeoutMs ?? 30_000;
    // The SDK prints a multi-line notice about future Node versions on Node 20, which we support;
    // keep the agent's stderr to one clear line per event. Setting the variable to 'false' restores it.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    this.client = new S3Client({
      endpoint: options.endpoint,
      region: options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      credentials: options.credentials,
      forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
      maxAttempts: options.maxAttempts ?? 2,
      // Checksums only where S3 requires them: many S3-compatible servers reject the newer
      // default (aws-chunked bodies with CRC trailers). Our objects carry their own CRC-32.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  private k(key: string): string {
    checkKey(key);
    return this.prefix + key;
  }

  private opts(): { abortSignal: AbortSignal } {
    return { abortSignal: AbortSignal.timeout(this.timeoutMs) };
  }

  async put(key: string, body: Uint8Array): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.k(key), Body: body, ContentType: 'application/octet-stream' }), this.opts());
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.k(key) }), this.opts());
      if (!out.Body) return new Uint8Array(0);
      return await out.Body.transformToByteArray();
    } catch (err) {
      if (isS3NotFound(err)) return undefined;
      throw err;
    }
  }

  async list(prefix: string, options: ListOptions = {}): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    const limit = options.limit ?? Infinity;
    do {
      const res = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: this.prefix + prefix,
          StartAfter: options.startAfter !== undefined && token === undefined ? this.prefix + options.startAfter : undefined,
          ContinuationToken: token,
          // Full pages, cut locally: cheap, and some S3-compatible servers (s3rver on Node 20)
          // fail when asked to truncate a page.
          MaxKeys: 1000,
        }),
        this.opts(),
      );
      for (const o of res.Contents ?? []) if (o.Key !== undefined && out.length < limit) out.push(o.Key.slice(this.prefix.length));
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token !== undefined && out.length < limit);
    return out.sort();
  }

  async delete(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.k(key) }), this.opts());
  }

  async copy(fromKey: string, toKey: string): Promise<void> {
    await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: this.k(toKey), CopySource: encodeCopySource(this.bucket, this.k(fromKey)) }), this.opts());
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}

interface S3ErrorShape {
  name?: string;
  $metadata?: { httpStatusCode?: number };
}

function s3Status(err: unknown): number | undefined {
  return typeof err === 'object' && err !== null ? (err as S3ErrorShape).$metadata?.httpStatusCode : undefined;
}

function isS3NotFound(err: unknown): boolean {
  const name = typeof err === 'object' && err !== null ? (err as S3ErrorShape).name : undefined;
  return name === 'NoSuchKey' || name === 'NotFound' || (s3Status(err) === 404 && name !== 'NoSuchBucket');
}

// ---------------------------------------------------------------------------------------------

/**
 * 'retryable' when trying the same call again later may succeed (network, timeouts, 5xx, throttling,
 * a full or read-only disk, missing bucket or credentials an operator can fix); 'failure' when this
 * particular request can never succeed (a bad key, a 400 the store gives for the object itself).
 */
export function classifyStoreError(err: unknown): 'retryable' | 'failure' {
  if (err instanceof InvalidKeyError) return 'failure';
  const status = s3Status(err);
  if (status !== undefined) return status === 400 || status === 411 || status === 413 ? 'failure' : 'retryable';
  const code = errnoOf(err);
  if (code === 'ENAMETOOLONG' || code === 'EINVAL') return 'failure';
  return 'retryable';
}

export interface OpenStoreOptions {
  /** From --s3-endpoint / RIPTIDE_S3_ENDPOINT. */
  s3Endpoint?: string;
  region?: string;
  credentials?: S3StoreOptions['credentials'];
  requestTimeoutMs?: number;
}

/**
 * Open the store a URL names: `file:///abs/path` or `s3://bucket[/prefix]`.
 * Throws {@link StoreConfigError} with one clear line for anything else.
 */
export function openStore(url: string, options: OpenStoreOptions = {}): ObjectStore {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new StoreConfigError(`store "${url}" is not a URL: use file:///path or s3://bucket/prefix`);
  }
  if (u.protocol === 'file:') {
    if (u.host !== '' && u.host !== 'localhost') throw new StoreConfigError(`store "${url}": file URLs need an absolute path (file:///path)`);
    const path = fileURLToPath(u);
    if (!path.startsWith(sep)) throw new StoreConfigError(`store "${url}": file URLs need an absolute path`);
    return new FileStore(path);
  }
  if (u.protocol === 's3:') {
    if (u.hostname === '') throw new StoreConfigError(`store "${url}": missing bucket name (s3://bucket/prefix)`);
    return new S3Store({
      bucket: u.hostname,
      prefix: decodeURIComponent(u.pathname.replace(/^\/+/, '')),
      endpoint: options.s3Endpoint,
      region: options.region,
      credentials: options.credentials,
      requestTimeoutMs: options.requestTimeoutMs,
    });
  }
  throw new StoreConfigError(`store "${url}": unsupported scheme ${u.protocol} (use file:///path or s3://bucket/prefix)`);
}
