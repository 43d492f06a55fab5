// A business transaction id in a JSON request body becomes the trace id, so two services that
// pass the id along (but no tracing headers) end up in one trace.

import { Input, NONE, Output } from "@riptide/sdk-plugin/assembly";
export { riptide_abi_v1, riptide_alloc } from "@riptide/sdk-plugin/assembly";

// Field names tried in order; a dot descends into nested objects.
const FIELDS: string[] = ["txn_id", "transaction_id", "transactionId", "order.txn_id"];

export function riptide_on_http_request(ptr: usize, len: i32): usize {
  const input = Input.read(ptr, len);
  const ct = input.header("content-type");
  if (ct === null || !ct.toLowerCase().includes("json")) return NONE;
  for (let i = 0; i < FIELDS.length; i++) {
    const id = input.jsonField(FIELDS[i]);
    if (id !== null && id.length > 0 && id.length <= 128) {
      return new Output().traceId(id).businessId(id).attribute("biz.txn_id", id).finish();
    }
  }
  return NONE;
}
