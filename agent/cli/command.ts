/**
 * A `riptide` subcommand. Each lives in `agent/cli/commands/<name>.ts` and is listed in `main.ts`;
 * it is imported only when run, so `riptide agent` never loads ClickHouse and vice versa.
 */
export interface Command {
  name: string;
  /** One line for `riptide --help`. */
  summary: string;
  /** Full `--help` text. */
  help: string;
  /** `--help` for these arguments when it depends on them (e.g. `riptide plugin build --help`). */
  helpFor?(argv: string[]): string;
  /** Returns the exit code. Throw a {@link CliError} for anything the user should read: one line. */
  run(argv: string[]): Promise<number>;
}

/**
 * Exit codes, the same for the same kind of failure in every command (README "Exit codes" and
 * every `--help` show this table).
 */
export const ExitCode = {
  ok: 0,
  /** The command ran and what it was asked to do failed (a plugin that does not compile, an internal error). */
  failed: 1,
  /** Bad flag, value, argument, URL or config file. */
  usage: 2,
  /** Not permitted: missing privilege or kernel capability (root/CAP_BPF, BTF, tracefs), or a refused credential. */
  denied: 3,
  /** A dependency could not be reached or opened (ClickHouse, the object store, the marketplace). */
  unreachable: 4,
  /** Cannot listen: the port is in use or the address is not allowed. */
  listen: 5,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** The table for `--help` and the README. */
export const EXIT_CODES_HELP = [
  'Exit codes:',
  '  0  ok',
  '  1  failed (the command ran and its work failed, or an internal error)',
  '  2  usage: bad flag, value, argument, URL or config file',
  '  3  not permitted: missing privilege or kernel capability, or a refused credential',
  '  4  unreachable: ClickHouse, the object store or the marketplace cannot be reached or opened',
  '  5  cannot listen: port in use or address not allowed',
].join('\n');

/** An error the user reads as one line (`riptide <command>: <message>`); the exit code says its kind. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCodeValue,
  ) {
    super(message);
  }
}

/** An error the user caused (bad flag, missing file): exit code 2. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, ExitCode.usage);
  }
}

/** The work failed (a build error, a refused download): exit code 1. */
export class FatalError extends CliError {
  constructor(message: string) {
    super(message, ExitCode.failed);
  }
}

/** Missing privilege or capability (no root, no BTF, a refused token): exit code 3. */
export class DeniedError extends CliError {
  constructor(message: string) {
    super(message, ExitCode.denied);
  }
}

/** A dependency could not be reached or opened (ClickHouse, the store, the marketplace): exit code 4. */
export class UnreachableError extends CliError {
  constructor(message: string) {
    super(message, ExitCode.unreachable);
  }
}

/** Cannot listen on a port (in use, or not allowed): exit code 5. */
export class ListenError extends CliError {
  constructor(message: string) {
    super(message, ExitCode.listen);
  }
}

const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET']);

/** The first line of an error's message, with its `code` as the kind when it has no message. */
export function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message || ((err as NodeJS.ErrnoException).code ?? err.name) : String(err);
  return msg.split('\n')[0].trim();
}

/**
 * Any error as a {@link CliError}: ours pass through; system errors are classified by their code
 * (EADDRINUSE → 5, ECONNREFUSED → 4, EACCES/EPERM → 3, ENOENT or a bad URL → 2); the rest are internal (1).
 */
export function toCliError(err: unknown): CliError {
  if (err instanceof CliError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? (err as { cause?: { code?: string } } | undefined)?.cause?.code;
  const syscall = (err as NodeJS.ErrnoException | undefined)?.syscall;
  const msg = firstLine(err);
  if (code === 'EADDRINUSE' || code === 'EADDRNOTAVAIL' || (syscall === 'listen' && (code === 'EACCES' || code === 'EPERM'))) return new ListenError(`cannot listen: ${msg}`);
  if (code && UNREACHABLE_CODES.has(code)) return new UnreachableError(msg);
  if (code === 'EACCES' || code === 'EPERM') return new DeniedError(msg);
  if (code === 'ERR_INVALID_URL' || code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return new UsageError(msg);
  return new FatalError(`internal error: ${msg}`);
}
