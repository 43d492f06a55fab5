/**
 * Collects parsed messages, process metadata and closed sockets into batches, one per time slot
 * (by arrival time at the agent), cut early into parts by a size cap. Memory is bounded by a
 * shared {@link MemoryBudget}: a message that does not fit is refused (the caller counts the drop).
 *
 * Messages are serialised into the open batch's body as they arrive ({@link BatchBodyStream}), so
 * an open slot holds bytes, not message objects that would outlive V8's young generation. A cut
 * hands over the finished, uncompressed body; compression, spooling and upload happen downstream.
 *
 * @example
 *   const b = new Batcher({ agentId: 'node-a', host: 'node-a', slotSeconds: 2, run, budget }, (cut) => ship(cut));
 *   b.add(message);     // false when over the memory budget
 *   b.roll(Date.now()); // cut when the slot changed (also done by add)
 *   b.flush();          // cut whatever is pending
 */
import type { ProcessInfo, SocketClosed } from '../capture/message.ts';
import type { ParsedMessage } from './batch.ts';
import { BATCH_FORMAT_VERSION, BatchBodyStream } from './codec.ts';
import type { BatchFields } from './codec.ts';
import { sliceNow } from '../capture/slice-clock.ts';

/** Bytes of memory shared by everything the shipper holds: open batches and batches being encoded. */
export class MemoryBudget {
  used = 0;
  constructor(readonly max: number) {}

  tryTake(n: number): boolean {
    if (this.used + n > this.max) return false;
    this.used += n;
    return true;
  }

  release(n: number): void {
    this.used = Math.max(0, this.used - n);
  }
}

/** Rough in-memory size of a message: the payload plus the object, strings and l7 fields around it. */
export function messageCost(m: ParsedMessage): number {
  return m.payload.byteLength + 320 + 160 * m.l7.length;
}

const CLOSED_COST = 64;

export interface BatcherOptions {
  agentId: string;
  host: string;
  slotSeconds: number;
  /** Agent run id (start time, unix ms). */
  run: number;
  budget: MemoryBudget;
  /** Cut a part when the open batch holds this many (estimated) bytes. Default 8 MiB. */
  maxBatchBytes?: number;
  /** Process metadata remembered for pids (oldest forgotten first). Default 16 384. */
  maxProcesses?: number;
  now?: () => number;
}

export interface CutBatch {
  /** The batch's fields (what its object key is made of). */
  batch: BatchFields & { version: number };
  /** The uncompressed RTB body (see codec.ts), ready to frame. */
  body: Uint8Array;
  messageCount: number;
  /** Bytes charged to the memory budget for this batch; release them when it leaves memory. */
  chargedBytes: number;
}

export class Batcher {
  private stream: BatchBodyStream | null = null;
  private closed: SocketClosed[] = [];
  private pids = new Set<number>();
  private charged = 0;
  private slot: number;
  private slotEndMs: number;
  private part = 0;
  private readonly known = new Map<number, ProcessInfo>();
  private readonly maxBatchBytes: number;
  private readonly maxProcesses: number;
  private readonly now: () => number;

  constructor(
    private readonly o: BatcherOptions,
    private readonly onCut: (cut: CutBatch) => void,
  ) {
    if (!Number.isInteger(o.slotSeconds) || o.slotSeconds < 1) throw new RangeError(`slotSeconds must be a whole number of seconds ≥ 1, got ${o.slotSeconds}`);
    this.maxBatchBytes = o.maxBatchBytes ?? 8 * 1024 * 1024;
    this.maxProcesses = o.maxProcesses ?? 16_384;
    this.now = o.now ?? Date.now;
    this.slot = this.slotOf(this.now());
    this.slotEndMs = (this.slot + 1) * o.slotSeconds * 1000;
  }

  slotOf(ms: number): number {
    return Math.floor(ms / 1000 / this.o.slotSeconds);
  }

  /** When the open slot ends (unix ms): the shipper sets its timer to this. */
  get currentSlotEndMs(): number {
    return this.slotEndMs;
  }

  /** Bytes held by the open batch. */
  get openBytes(): number {
    return this.charged;
  }

  /** Add a message; false when it does not fit the memory budget (dropped). */
  add(m: ParsedMessage): boolean {
    // While the capture drains a ring slice, "now" is the slice's (one clock read per slice).
    this.roll(sliceNow(this.now));
    const cost = messageCost(m);
    if (!this.o.budget.tryTake(cost)) return false;
    this.stream ??= new BatchBodyStream(this.fields());
    try {
      this.stream.add(m);
    } catch (err) {
      // Not encodable (a BatchEncodeError): the stream rolled back; the caller counts the drop.
      this.o.budget.release(cost);
      throw err;
    }
    this.pids.add(m.pid);
    this.charged += cost;
    if (this.charged >= this.maxBatchBytes) this.cut();
    return true;
  }

  /** Remember (or refresh) a process's metadata; it goes into every batch with messages of that pid. */
  addProcess(info: ProcessInfo): void {
    this.known.delete(info.pid);
    this.known.set(info.pid, info);
    if (this.known.size > this.maxProcesses) {
      const oldest = this.known.keys().next().value as number;
      this.known.delete(oldest);
    }
    this.pids.add(info.pid);
  }

  /** Record a closed socket; false when over the memory budget (dropped). */
  socketClosed(ev: SocketClosed): boolean {
    this.roll(sliceNow(this.now));
    if (!this.o.budget.tryTake(CLOSED_COST)) return false;
    this.closed.push(ev);
    this.charged += CLOSED_COST;
    return true;
  }

  /** Cut the open batch if `nowMs` is past its slot. */
  roll(nowMs: number): void {
    if (nowMs < this.slotEndMs) return;
    this.cut();
    this.slot = this.slotOf(nowMs);
    this.slotEndMs = (this.slot + 1) * this.o.slotSeconds * 1000;
    this.part = 0;
  }

  /** Cut whatever is open now (for close), keeping the slot. */
  flush(): void {
    this.cut();
  }

  private fields(): BatchFields {
    return { agentId: this.o.agentId, host: this.o.host, slot: this.slot, slotSeconds: this.o.slotSeconds, part: this.part, run: this.o.run };
  }

  private cut(): void {
    if (this.stream === null && this.closed.length === 0) {
      this.pids.clear();
      return;
    }
    const processes: ProcessInfo[] = [];
    for (const pid of this.pids) {
      const p = this.known.get(pid);
      if (p) processes.push(p);
    }
    const fields = this.fields();
    const stream = this.stream ?? new BatchBodyStream(fields, 0);
    const cut: CutBatch = {
      batch: { ...fields, version: BATCH_FORMAT_VERSION },
      body: stream.finish(processes, this.closed),
      messageCount: stream.messageCount,
      chargedBytes: this.charged,
    };
    this.part++;
    this.stream = null;
    this.closed = [];
    this.pids = new Set();
    this.charged = 0;
    this.onCut(cut);
  }
}
