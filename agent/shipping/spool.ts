/**
 * A bounded on-disk queue of encoded batches waiting for upload (under `<data-dir>/spool`).
 *
 * Every batch goes through it, so a store outage or an agent restart loses nothing: on start the
 * spool re-reads its folder and the shipper resumes uploading, oldest first.
 *
 * The cap is in bytes. Past it the spool drops the OLDEST waiting batches to make room: after an
 * outage the freshest data — the incident an SRE is looking at now — is what matters, and the
 * span builder already treats a missing slot like any other gap. A batch being uploaded is never
 * dropped; if only such batches are left (or one batch is larger than the cap) the new one is
 * dropped instead. Every drop is reported through `onDrop` (the shipper counts and logs it).
 *
 * File names: `<seq, 16 digits>.<message count>.<object key, URI-encoded>`; temp files start with
 * `.rt-tmp-` and are removed on open. Writes are temp file + rename, so a crash leaves either the
 * whole batch or nothing.
 *
 * @example
 *   const spool = await DiskSpool.open({ dir: '/var/lib/riptide/spool', maxBytes: 1 << 30 });
 *   await spool.append(key, bytes, messageCount);
 *   const e = spool.claim();  if (e) { const b = await spool.read(e); …; await spool.remove(e); }
 */
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface SpoolEntry {
  readonly seq: number;
  readonly key: string;
  readonly messages: number;
  readonly bytes: number;
  readonly file: string;
}

export type SpoolDropReason = 'spool_full' | 'too_large';

export interface SpoolOptions {
  dir: string;
  /** Cap on the bytes of spooled batches. */
  maxBytes: number;
  onDrop?: (entry: { key: string; messages: number; bytes: number }, reason: SpoolDropReason) => void;
}

const TEMP_MARK = '.rt-tmp-';
const NAME_RE = /^(\d{16})\.(\d+)\.(.+)$/;

interface Slot extends SpoolEntry {
  claimed: boolean;
}

export class DiskSpool {
  /** Oldest first. */
  private readonly entries: Slot[] = [];
  private totalBytes = 0;
  private nextSeq: number;
  private waiters: Array<() => void> = [];
  private writes = 0;

  private constructor(
    private readonly o: SpoolOptions,
    lastSeq: number,
  ) {
    // Sequence numbers follow time across restarts (µs since the epoch), and never go back.
    this.nextSeq = Math.max(lastSeq + 1, Date.now() * 1000);
  }

  /** Open (creating) the spool folder and pick up what an earlier run left. */
  static async open(o: SpoolOptions): Promise<DiskSpool> {
    await mkdir(o.dir, { recursive: true });
    const found: Slot[] = [];
    for (const name of await readdir(o.dir)) {
      const file = join(o.dir, name);
      if (name.startsWith(TEMP_MARK)) {
        await rm(file, { force: true });
        continue;
      }
      const m = NAME_RE.exec(name);
      if (!m) continue;
      let key: string;
      try {
        key = decodeURIComponent(m[3]);
      } catch {
        continue;
      }
      const st = await stat(file).catch(() => undefined);
      if (!st?.isFile()) continue;
      found.push({ seq: Number(m[1]), messages: Number(m[2]), key, bytes: st.size, file, claimed: false });
    }
    found.sort((a, b) => a.seq - b.seq);
    const spool = new DiskSpool(o, found.length > 0 ? found[found.length - 1].seq : 0);
    for (const e of found) {
      spool.entries.push(e);
      spool.totalBytes += e.bytes;
    }
    // The cap may have been lowered since the last run.
    while (spool.totalBytes > o.maxBytes && spool.dropOldest('spool_full')) {
      /* keep dropping */
    }
    return spool;
  }

  /** Bytes spooled (including batches being uploaded and writes in progress). */
  get bytes(): number {
    return this.totalBytes;
  }

  /** Batches spooled (including those being uploaded). */
  get size(): number {
    return this.entries.length;
  }

  /** Messages in spooled batches. */
  get messages(): number {
    let n = 0;
    for (const e of this.entries) n += e.messages;
    return n;
  }

  /** True when nothing is spooled and no write is in progress. */
  get empty(): boolean {
    return this.entries.length === 0 && this.writes === 0;
  }

  /**
   * Write a batch. Makes room by dropping the oldest waiting batches; returns false when the new
   * batch itself had to be dropped. Throws only when the disk write fails.
   */
  async append(key: string, bytes: Uint8Array, messages: number): Promise<boolean> {
    const need = bytes.length;
    if (need > this.o.maxBytes) {
      this.o.onDrop?.({ key, messages, bytes: need }, 'too_large');
      return false;
    }
    while (this.totalBytes + need > this.o.maxBytes) {
      if (!this.dropOldest('spool_full')) {
        this.o.onDrop?.({ key, messages, bytes: need }, 'spool_full');
        return false;
      }
    }
    // Reserve before awaiting, so concurrent appends cannot overshoot the cap together.
    this.totalBytes += need;
    this.writes++;
    const seq = this.nextSeq++;
    const name = `${String(seq).padStart(16, '0')}.${messages}.${encodeURIComponent(key)}`;
    const file = join(this.o.dir, name);
    const tmp = join(this.o.dir, `${TEMP_MARK}${name}`);
    try {
      await writeFile(tmp, bytes);
      await rename(tmp, file);
    } catch (err) {
      this.totalBytes -= need;
      await rm(tmp, { force: true });
      throw err;
    } finally {
      this.writes--;
    }
    const entry: Slot = { seq, key, messages, bytes: need, file, claimed: false };
    // Keep seq order even when writes finish out of order.
    let i = this.entries.length;
    while (i > 0 && this.entries[i - 1].seq > seq) i--;
    this.entries.splice(i, 0, entry);
    this.notify();
    return true;
  }

  private dropOldest(reason: SpoolDropReason): boolean {
    const i = this.entries.findIndex((e) => !e.claimed);
    if (i < 0) return false;
    const [e] = this.entries.splice(i, 1);
    this.totalBytes -= e.bytes;
    // The file goes in the background; the bytes are already accounted as free.
    rm(e.file, { force: true }).catch(() => undefined);
    this.o.onDrop?.({ key: e.key, messages: e.messages, bytes: e.bytes }, reason);
    this.notify();
    return true;
  }

  /** The oldest batch nobody is uploading, now marked as taken; undefined when none. */
  claim(): SpoolEntry | undefined {
    const e = this.entries.find((x) => !x.claimed);
    if (e) e.claimed = true;
    return e;
  }

  /** Give a claimed batch back (upload aborted); it will be claimed again first. */
  unclaim(entry: SpoolEntry): void {
    const e = this.entries.find((x) => x.seq === entry.seq);
    if (e) e.claimed = false;
    this.notify();
  }

  async read(entry: SpoolEntry): Promise<Uint8Array> {
    const b = await readFile(entry.file);
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  }

  /** Forget a batch (uploaded, or refused for good) and delete its file. */
  async remove(entry: SpoolEntry): Promise<void> {
    const i = this.entries.findIndex((x) => x.seq === entry.seq);
    if (i >= 0) {
      this.entries.splice(i, 1);
      this.totalBytes -= entry.bytes;
    }
    await rm(entry.file, { force: true });
    this.notify();
  }

  /** Resolves at the next change (append, remove, drop, unclaim) or when `signal` aborts. */
  changed(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const done = (): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = (): void => {
        const i = this.waiters.indexOf(done);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve();
      };
      this.waiters.push(done);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
