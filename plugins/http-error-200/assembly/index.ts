// An HTTP 2xx whose JSON body says {"error": …} is a failure the status code hides: mark the
// response server_error and keep the message as the exception.

import { Input, NONE, Output, Status } from "@riptide/sdk-plugin/assembly";
export { riptide_abi_v1, riptide_alloc } from "@riptide/sdk-plugin/assembly";

const MAX_MESSAGE: i32 = 256;

export function riptide_on_http_response(ptr: usize, len: i32): usize {
  const input = Input.read(ptr, len);
  const code = input.statusCode();
  if (code < 200 || code > 299) return NONE;
  const ct = input.header("content-type");
  if (ct === null || !ct.toLowerCase().includes("json")) return NONE;
  let err = input.jsonField("error");
  if (err === null || err == "null" || err == "false" || err.length == 0) return NONE;
  if (err.startsWith("{")) {
    // {"error": {"message": "...", "code": ...}}
    const m = input.jsonField("error.message");
    if (m !== null) err = m;
  }
  if (err.length > MAX_MESSAGE) err = err.substring(0, MAX_MESSAGE);
  return new Output().status(Status.ServerError).exception(err).finish();
}
