import type { ResponseStatus } from '../parser.ts';

/** HTTP status → class: 4xx is the caller's fault, 5xx the server's. */
export function httpStatusClass(code: number): ResponseStatus {
  if (code >= 500) return 'server_error';
  if (code >= 400) return 'client_error';
  return 'ok';
}

/** gRPC status codes that blame the caller (bad argument, not found, denied, …). */
const GRPC_CLIENT = new Set([1, 3, 5, 6, 7, 9, 11, 16]);

export function grpcStatusClass(code: number): ResponseStatus {
  if (code === 0) return 'ok';
  return GRPC_CLIENT.has(code) ? 'client_error' : 'server_error';
}

/**
 * SQLSTATE class → status. Classes that mean "the statement or its data were wrong" (syntax, access,
 * constraint, data, auth, unknown database) are client errors; the rest (resources, internal,
 * operator intervention) are the server's.
 */
const SQL_CLIENT_CLASSES = new Set(['0A', '22', '23', '28', '3D', '3F', '42', '44']);

export function sqlStateClass(sqlState: string | undefined): ResponseStatus {
  if (!sqlState || sqlState.length < 2) return 'server_error';
  return SQL_CLIENT_CLASSES.has(sqlState.slice(0, 2).toUpperCase()) ? 'client_error' : 'server_error';
}
