// Template plugin: copy this folder, rename it in plugin.json, keep the hooks you need (and list
// them in plugin.json). Build with `npx riptide plugin build <folder>` (sdk-plugin/README.md).
// "@riptide/sdk-plugin/assembly" resolves from node_modules if the SDK is installed there, else to
// the SDK that runs the build — so this import works as is wherever the folder is copied.

import { Input, NONE, Output, Status } from "@riptide/sdk-plugin/assembly";
export { riptide_abi_v1, riptide_alloc } from "@riptide/sdk-plugin/assembly";

// After the built-in HTTP parser has parsed a request: add a business id from a header.
export function riptide_on_http_request(ptr: usize, len: i32): usize {
  const input = Input.read(ptr, len);
  const tenant = input.header("x-tenant-id");
  if (tenant === null) return NONE;
  return new Output().attribute("tenant", tenant).businessId(tenant).finish();
}

// After a response: a 200 with {"status": "failed"} is a server error.
export function riptide_on_http_response(ptr: usize, len: i32): usize {
  const input = Input.read(ptr, len);
  if (input.statusCode() != 200) return NONE;
  const status = input.jsonField("status");
  if (status === null || status != "failed") return NONE;
  return new Output().status(Status.ServerError).exception("status: failed").finish();
}

// A custom protocol instead: declare it in plugin.json ("hooks": ["check", "parse"],
// "protocols": [{ "name": "myproto", "transports": ["tcp"], "pairing": "by-id" }]) and export
//   riptide_check(ptr, len): i32    — 1 if the payload is yours, else 0
//   riptide_parse(ptr, len): usize  — new Output().request().requestId(id).resource(m)….finish()
// See plugins/tinyrpc for a complete one.
