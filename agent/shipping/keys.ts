/**
 * Where batches live in the object store. One object per agent × slot × part:
 *
 *   batches/<YYYY-MM-DD>/<HH>/<agentId>/<slot>/<run>-<part>-<slotSeconds>s.rtb
 *   batches/2026-11-21/05/node-a/000566666666/1763703250123-000000-3s.rtb
 *
 * - The date and hour (UTC, of the slot's start) come first so a poller can list "everything new
 *   in this hour" and lifecycle rules can expire by day, without listing the whole bucket.
 * - `<agentId>/<slot>/` is the prefix for one agent's slot: a function that holds a batch finds the
 *   neighbours (slot N-1 and N+1, where a request's response may have landed) with one small list
 *   per slot — {@link neighbourPrefixes}.
 * - Numbers are zero-padded, so lexicographic order (the order S3 lists in) is time order.
 * - `run` (agent start time, ms) keeps two runs of one agent inside one slot apart; `part` numbers
 *   the objects of a slot cut early by the size cap. The same batch always gets the same key, so a
 *   retried upload overwrites itself instead of duplicating (idempotent uploads).
 *
 * @example
 *   const key = batchKey(batch);
 *   parseBatchKey(key);                                   // { agentId, slot, slotSeconds, run, part }
 *   neighbourPrefixes('node-a', 566666666, 3);            // [slot-1, slot, slot+1] prefixes
 */

export const BATCH_PREFIX = 'batches/';
export const QUARANTINE_PREFIX = 'quarantine/';
export const BATCH_SUFFIX = '.rtb';

/** Agent ids are path segments: letters, digits, dot, dash, underscore; not starting with a dot. */
const AGENT_ID = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

export interface BatchKeyParts {
  agentId: string;
  slot: number;
  slotSeconds: number;
  /** Agent run id (start time, unix ms); 0 when unknown. */
  run?: number;
  part: number;
}

export class BatchKeyError extends Error {
  override readonly name = 'BatchKeyError';
}

/** True when `id` can be used as an agent id in object keys. */
export function isValidAgentId(id: string): boolean {
  return AGENT_ID.test(id);
}

/** Turn a host name (or anything) into a valid agent id: other characters become '_'. */
export function toAgentId(name: string): string {
  const s = name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\./, '_').slice(0, 128);
  return s.length > 0 ? s : 'agent';
}

function checkInt(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new BatchKeyError(`${what} must be a non-negative integer, got ${n}`);
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/** `batches/<YYYY-MM-DD>/<HH>/` for the hour holding `unixSeconds` (UTC). */
export function hourPrefix(unixSeconds: number): string {
  const iso = new Date(Math.floor(unixSeconds) * 1000).toISOString();
  return `${BATCH_PREFIX}${iso.slice(0, 10)}/${iso.slice(11, 13)}/`;
}

/** The prefix under which every object of one agent's slot lives (all runs and parts). */
export function slotPrefix(agentId: string, slot: number, slotSeconds: number): string {
  if (!isValidAgentId(agentId)) throw new BatchKeyError(`agent id ${JSON.stringify(agentId)} is not valid in an object key (letters, digits, . _ -)`);
  checkInt(slot, 'slot');
  checkInt(slotSeconds, 'slotSeconds');
  if (slotSeconds === 0) throw new BatchKeyError('slotSeconds must be at least 1');
  return `${hourPrefix(slot * slotSeconds)}${agentId}/${pad(slot, 12)}/`;
}

/** Prefixes of slots `slot - radius … slot + radius` of one agent, oldest first. */
export function neighbourPrefixes(agentId: string, slot: number, slotSeconds: number, radius = 1): string[] {
  const out: string[] = [];
  for (let s = Math.max(0, slot - radius); s <= slot + radius; s++) out.push(slotPrefix(agentId, s, slotSeconds));
  return out;
}

/** The object key of a batch: deterministic, so uploads are idempotent. */
export function batchKey(b: BatchKeyParts): string {
  const run = b.run ?? 0;
  checkInt(run, 'run');
  checkInt(b.part, 'part');
  return `${slotPrefix(b.agentId, b.slot, b.slotSeconds)}${pad(run, 13)}-${pad(b.part, 6)}-${b.slotSeconds}s${BATCH_SUFFIX}`;
}

const KEY_RE = /^(?:.*\/)?batches\/(\d{4}-\d{2}-\d{2})\/(\d{2})\/([A-Za-z0-9_-][A-Za-z0-9._-]{0,127})\/(\d{12,})\/(\d{13,})-(\d{6,})-(\d+)s\.rtb$/;

/**
 * The parts of a batch key, or undefined when `key` is not one (a quarantined copy, a temp file…).
 * Accepts keys under any leading prefix (`quarantine/batches/…` parses too).
 */
export function parseBatchKey(key: string): BatchKeyParts | undefined {
  const m = KEY_RE.exec(key);
  if (!m) return undefined;
  const parts: BatchKeyParts = { agentId: m[3], slot: Number(m[4]), run: Number(m[5]), part: Number(m[6]), slotSeconds: Number(m[7]) };
  if (!Number.isSafeInteger(parts.slot) || !Number.isSafeInteger(parts.run) || parts.slotSeconds < 1) return undefined;
  // A slot time past what a Date holds (±8.64e12 s) is no key we wrote, and hourPrefix would throw.
  if (!(parts.slot * parts.slotSeconds <= 8.64e12)) return undefined;
  // The date folder must be the one the slot implies; anything else is not a key we wrote.
  if (hourPrefix(parts.slot * parts.slotSeconds) !== `${BATCH_PREFIX}${m[1]}/${m[2]}/`) return undefined;
  return parts;
}

/**
 * Where the functions move a batch that cannot be used (functions/runtime/quarantine.ts, the one
 * place that does), next to a {@link quarantineNoteKey} note saying why.
 */
export function quarantineKey(key: string): string {
  return `${QUARANTINE_PREFIX}${key}`;
}

/** The JSON {@link QuarantineNote} beside a quarantined object. */
export function quarantineNoteKey(key: string): string {
  return `${quarantineKey(key)}.reason.json`;
}

/** Why an object was quarantined (`quarantine/<key>.reason.json`). */
export interface QuarantineNote {
  /** The key it had. */
  key: string;
  /** A short label: malformed, key_mismatch, invalid, … (also the metric's label). */
  reason: string;
  /** The decoder's message. */
  error: string;
  /** ISO time it was moved. */
  at: string;
}
