import type { ParseContext } from '../parser.ts';

/**
 * Which way a payload flows relative to the request: true when this syscall carries requests
 * (a client sending or a server receiving), false for responses, undefined when the socket's role is
 * unknown and the parser has to decide from the content.
 */
export function requestSide(ctx: ParseContext): boolean | undefined {
  if (ctx.role === 'client') return ctx.direction === 'egress';
  if (ctx.role === 'server') return ctx.direction === 'ingress';
  return undefined;
}

/** Socket-wide state shared by both directions (falls back to the direction's own state). */
export function socketState(ctx: ParseContext): Record<string, unknown> {
  return ctx.socketState ?? ctx.state;
}
