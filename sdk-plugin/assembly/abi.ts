// Riptide plugin ABI v1, guest side. See ../ABI.md. Every plugin re-exports the two functions below:
//   export { riptide_abi_v1, riptide_alloc } from "@riptide/sdk-plugin/assembly";

/** Version marker: the host refuses a module without it. */
export function riptide_abi_v1(): i32 {
  return 1;
}

/**
 * Called by the host at the start of every hook call: frees everything the previous call allocated
 * (the stub runtime's bump heap is reset) and returns a buffer of `size` bytes for the input.
 */
export function riptide_alloc(size: i32): usize {
  heap.reset();
  return heap.alloc(<usize>size);
}

/** Return this from a hook for "no result". */
export const NONE: usize = 0;

// Hook kinds (byte 0 of the input).
export const HOOK_CHECK: u8 = 1;
export const HOOK_PARSE: u8 = 2;
export const HOOK_HTTP_REQUEST: u8 = 3;
export const HOOK_HTTP_RESPONSE: u8 = 4;

export const HEADER_SIZE: i32 = 32;

// TLV tags: [u8 tag][u32 LE length][value].
export namespace Tag {
  export const MESSAGE: u8 = 0x01;
  export const REQUEST_TYPE: u8 = 0x10;
  export const REQUEST_DOMAIN: u8 = 0x11;
  export const REQUEST_RESOURCE: u8 = 0x12;
  export const ENDPOINT: u8 = 0x13;
  export const REQUEST_ID: u8 = 0x14;
  export const RESPONSE_CODE: u8 = 0x15;
  export const RESPONSE_STATUS: u8 = 0x16;
  export const RESPONSE_EXCEPTION: u8 = 0x17;
  export const REQUEST_LENGTH: u8 = 0x18;
  export const RESPONSE_LENGTH: u8 = 0x19;
  export const TRACE_ID: u8 = 0x1a;
  export const SPAN_ID: u8 = 0x1b;
  export const PARENT_SPAN_ID: u8 = 0x1c;
  export const X_REQUEST_ID: u8 = 0x1d;
  export const ATTRIBUTE: u8 = 0x1e;
  export const BUSINESS_ID: u8 = 0x1f;
  export const TRUNCATED: u8 = 0x20;
  export const L7_PROTOCOL: u8 = 0x21;
}

export enum Status {
  Ok = 0,
  ClientError = 1,
  ServerError = 2,
  Timeout = 3,
  Unknown = 4,
}

export enum MsgType {
  Request = 0,
  Response = 1,
}
