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
  /** Returns the exit code. Throw {@link UsageError} for bad flags: the user sees one line. */
  run(argv: string[]): Promise<number>;
}

/** An error the user caused (bad flag, missing file): printed as one line, exit code 2. */
export class UsageError extends Error {}

/** An environment problem (no root, no BTF): printed as one line, exit code 1. */
export class FatalError extends Error {}
