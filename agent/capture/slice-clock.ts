/**
 * The wall clock of the ring slice being drained: read once when a slice starts (Capture.drainOnce)
 * and used by everything that asks for "now" per message on that path (the batcher's slot check),
 * instead of a Date.now() per message (~260 ns each on our VM). A slice lasts at most a few tens of
 * milliseconds (sliceRecords records), so a message drained late in it is put in the slot by the
 * time its slice started; outside a slice the real clock is read.
 *
 * @example
 *   beginSlice(Date.now()); try { drain(); } finally { endSlice(); }
 *   const now = sliceNow(Date.now);
 */
let sliceMs = 0;
let inSlice = false;

export function beginSlice(nowMs: number): void {
  sliceMs = nowMs;
  inSlice = true;
}

export function endSlice(): void {
  inSlice = false;
}

/** The slice's time while a slice is drained, else `clock()`. */
export function sliceNow(clock: () => number): number {
  return inSlice ? sliceMs : clock();
}
