/**
 * Reads a BPF ring buffer by mapping it into this process and walking the records in JavaScript:
 * no foreign call per event, and no callback from C. The kernel writes records with
 * BPF_RB_NO_WAKEUP, so there is no epoll wake-up per event either: we drain on a short timer
 * (and immediately again while there is a backlog).
 *
 * Layout (kernel/bpf/ringbuf.c): page 0 holds consumer_pos (we write it); page 1 holds
 * producer_pos; the data area follows and is mapped twice back to back, so a record that wraps
 * the end is still contiguous. Each record has an 8-byte header: u32 len (bit 31 busy, bit 30
 * discarded) and u32 page offset, then the sample, padded to 8 bytes.
 */
import koffi from 'koffi';
import type { Libbpf, Ptr } from './libbpf.ts';
import { MAP_FAILED, MAP_SHARED, PROT_READ, PROT_WRITE, errnoText } from './libbpf.ts';

const BUSY_BIT = 0x80000000;
const DISCARD_BIT = 0x40000000;
const HEADER = 8;

/** Called for every sample. `view` covers the mapped data; the sample is [offset, offset+len). Copy what you keep. */
export type RecordHandler = (view: DataView, bytes: Uint8Array, offset: number, len: number) => void;

export class RingReader implements Disposable {
  private readonly pageSize = 4096;
  private consumerMap: Ptr = null;
  private producerMap: Ptr = null;
  private readonly consumerPos: BigUint64Array;
  private readonly producerPos: BigUint64Array;
  private readonly view: DataView;
  private readonly bytes: Uint8Array;
  private readonly lens: Int32Array;
  private readonly mask: number;
  private closed = false;

  constructor(
    private readonly lib: Libbpf,
    fd: number,
    private readonly size: number,
  ) {
    if (size & (size - 1)) throw new Error(`ring buffer size ${size} is not a power of two`);
    this.mask = size - 1;
    const cons = lib.mmap(null, this.pageSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0n);
    if (cons === null || cons === MAP_FAILED) throw new Error(`mmap of the ring buffer consumer page failed: ${errnoText()}`);
    this.consumerMap = cons;
    const prod = lib.mmap(null, this.pageSize + 2 * size, PROT_READ, MAP_SHARED, fd, BigInt(this.pageSize));
    if (prod === null || prod === MAP_FAILED) {
      lib.munmap(cons, this.pageSize);
      throw new Error(`mmap of the ring buffer data failed: ${errnoText()}`);
    }
    this.producerMap = prod;
    this.consumerPos = new BigUint64Array(koffi.view(cons, this.pageSize), 0, 1);
    const prodBuf = koffi.view(prod, this.pageSize + 2 * size);
    this.producerPos = new BigUint64Array(prodBuf, 0, 1);
    this.view = new DataView(prodBuf, this.pageSize, 2 * size);
    this.bytes = new Uint8Array(prodBuf, this.pageSize, 2 * size);
    this.lens = new Int32Array(prodBuf, this.pageSize, (2 * size) / 4);
  }

  /** Bytes written by the kernel and not yet consumed. */
  backlog(): number {
    return Number(Atomics.load(this.producerPos, 0) - Atomics.load(this.consumerPos, 0));
  }

  /**
   * Consumes up to `maxRecords` samples, calling `onRecord` for each. Returns how many were consumed
   * (discarded records are skipped and not counted). Stops early at a record still being written.
   */
  drain(onRecord: RecordHandler, maxRecords = 65536): number {
    if (this.closed) return 0;
    let cons = Number(Atomics.load(this.consumerPos, 0));
    const prod = Number(Atomics.load(this.producerPos, 0));
    let n = 0;
    while (cons < prod && n < maxRecords) {
      const off = cons & this.mask;
      const hdr = Atomics.load(this.lens, off >>> 2) >>> 0;
      if (hdr & BUSY_BIT) break;
      const len = hdr & ~(BUSY_BIT | DISCARD_BIT);
      if (!(hdr & DISCARD_BIT)) {
        onRecord(this.view, this.bytes, off + HEADER, len);
        n++;
      }
      cons += (len + HEADER + 7) & ~7;
      // Release each record as we go so the kernel can reuse the space during a long drain.
      if ((n & 255) === 0) Atomics.store(this.consumerPos, 0, BigInt(cons));
    }
    Atomics.store(this.consumerPos, 0, BigInt(cons));
    return n;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.producerMap !== null) this.lib.munmap(this.producerMap, this.pageSize + 2 * this.size);
    if (this.consumerMap !== null) this.lib.munmap(this.consumerMap, this.pageSize);
    this.producerMap = this.consumerMap = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
