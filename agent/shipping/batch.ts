/**
 * The unit that leaves a node: everything one agent captured in one time slot.
 * Written by the agent (agent/shipping), read by the functions (functions/). Change additively.
 */
import type { CapturedMessage, ProcessInfo, SocketClosed } from '../capture/message.ts';
import type { L7Message, ProtocolDescriptor } from '../protocols/parser.ts';

/** A captured message with the application messages the parsers found in it (empty when unknown). */
export interface ParsedMessage extends CapturedMessage {
  l7: L7Message[];
}

export interface Batch {
  /** Format version of the encoding, checked by the reader. */
  version: number;
  /** Stable id of the agent (host name by default). */
  agentId: string;
  /** Host name the agent runs on. */
  host: string;
  /** Slot number: floor(unix seconds / slotSeconds). */
  slot: number;
  slotSeconds: number;
  /** Sequence within the slot when a slot is cut in several objects (size cap), from 0. */
  part: number;
  /**
   * Id of the agent run that wrote the batch (its start time, unix ms). Two runs of one agent inside
   * the same slot write distinct objects; absent in batches built by hand (then 0 in object keys).
   */
  run?: number;
  messages: ParsedMessage[];
  /** Metadata for every pid that appears in `messages`. */
  processes: ProcessInfo[];
  /** Sockets closed during the slot. */
  closed: SocketClosed[];
  /**
   * How the protocols in `messages` pair into spans, as the agent that captured them knew it
   * (built-ins and Wasm plugins; format 4). Absent in older batches and when the batch names no
   * protocol the agent had a descriptor for: readers fall back to the built-in table.
   */
  descriptors?: ProtocolDescriptor[];
}
