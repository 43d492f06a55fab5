/**
 * What the plugin host hands to the protocol registry. A Wasm plugin shows up as one of two things:
 *
 *   - a {@link ProtocolParser} (from `agent/protocols/parser.ts`) for each custom protocol it
 *     declares — the registry tries these before the built-ins;
 *   - an {@link HttpHookPlugin}, which the HTTP parsers (or the registry right after them) call
 *     with every parsed HTTP request/response; its {@link PluginResult} is merged into the message
 *     with {@link applyPluginResult} (or all hooks at once with `runHttpHooks`).
 *
 * Neither ever throws: a plugin that breaks a rule is disabled inside the host and from then on
 * answers "not mine" / null.
 *
 * @example
 *   for (const m of messages) if (m.l7Protocol === 'http1') runHttpHooks(plugins.httpHooks, m, payload, ctx);
 */
import type { L7Message, ParseContext } from '../protocols/parser.ts';
import type { PluginResult } from '../../sdk-plugin/src/abi.ts';

export type { PluginResult } from '../../sdk-plugin/src/abi.ts';

export interface HttpHookPlugin {
  /** The plugin's name (manifest `name`). */
  readonly name: string;
  /** Called with each parsed HTTP request; null when the plugin has nothing to add. */
  onHttpRequest(msg: L7Message, payload: Uint8Array, ctx: ParseContext): PluginResult | null;
  /** Called with each parsed HTTP response. */
  onHttpResponse(msg: L7Message, payload: Uint8Array, ctx: ParseContext): PluginResult | null;
}

/** Attribute under which a plugin's business ids are stored (comma-joined). */
export const BUSINESS_ID_ATTRIBUTE = 'biz_id';

/**
 * Merges a plugin result into a message: set fields override, attributes merge, business ids go to
 * the `biz_id` attribute. A trace id from a plugin wins over one from headers (that is the point of
 * the business-id plugins); a status override without a code keeps the code.
 */
export function applyPluginResult(msg: L7Message, r: PluginResult): void {
  if (r.requestType !== undefined) msg.requestType = r.requestType;
  if (r.requestDomain !== undefined) msg.requestDomain = r.requestDomain;
  if (r.requestResource !== undefined) msg.requestResource = r.requestResource;
  if (r.endpoint !== undefined) msg.endpoint = r.endpoint;
  if (r.requestId !== undefined) msg.requestId = r.requestId;
  if (r.responseCode !== undefined) msg.responseCode = r.responseCode;
  if (r.responseStatus !== undefined) msg.responseStatus = r.responseStatus;
  if (r.responseException !== undefined) msg.responseException = r.responseException;
  if (r.traceId !== undefined) msg.traceId = r.traceId;
  if (r.spanId !== undefined) msg.spanId = r.spanId;
  if (r.parentSpanId !== undefined) msg.parentSpanId = r.parentSpanId;
  if (r.xRequestId !== undefined) msg.xRequestId = r.xRequestId;
  if (r.attributes) msg.attributes = { ...msg.attributes, ...r.attributes };
  if (r.businessIds && r.businessIds.length > 0) {
    const prev = msg.attributes?.[BUSINESS_ID_ATTRIBUTE];
    const ids = prev ? [prev, ...r.businessIds] : r.businessIds;
    msg.attributes = { ...msg.attributes, [BUSINESS_ID_ATTRIBUTE]: ids.join(',') };
  }
}

/**
 * Runs every HTTP hook on one parsed HTTP message, in configuration order, merging results. Each
 * hook sees the message as the HTTP parser produced it, not what the hooks before it added: one
 * plugin's output is never another's input.
 */
export function runHttpHooks(hooks: readonly HttpHookPlugin[], msg: L7Message, payload: Uint8Array, ctx: ParseContext): void {
  if (hooks.length === 0) return;
  // shallow is enough: applyPluginResult replaces `attributes`, it never mutates it in place
  const parsed: L7Message = hooks.length > 1 ? { ...msg } : msg;
  for (const h of hooks) {
    const r = msg.msgType === 'request' ? h.onHttpRequest(parsed, payload, ctx) : h.onHttpResponse(parsed, payload, ctx);
    if (r) applyPluginResult(msg, r);
  }
}
