// @riptide/sdk-plugin — the AssemblyScript SDK for Riptide plugins (ABI v1).
//
// A plugin's entry file re-exports the ABI functions and exports the hooks it declares:
//
//   export { riptide_abi_v1, riptide_alloc } from "@riptide/sdk-plugin/assembly";
//   export function riptide_on_http_request(ptr: usize, len: i32): usize {
//     const input = Input.read(ptr, len);
//     const id = input.jsonField("txn_id");
//     return id === null ? NONE : new Output().traceId(id).finish();
//   }

export { riptide_abi_v1, riptide_alloc, NONE, Tag, Status, MsgType, HOOK_CHECK, HOOK_PARSE, HOOK_HTTP_REQUEST, HOOK_HTTP_RESPONSE } from "./abi";
export { Bytes, Reader } from "./bytes";
export { jsonField } from "./json";
export { Input } from "./input";
export { Output } from "./output";
