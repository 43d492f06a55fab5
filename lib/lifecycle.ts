/**
 * Two-phase start-up for a role (`riptide agent`, `riptide up`, the functions runtime): first
 * *build* every part (open files and connections, construct objects; nothing runs, listens or ticks
 * yet), then *start* them in order (listen, attach, set timers, spawn). Every part built or started
 * says how to undo it. When any step fails, what was built or started so far is disposed, latest
 * first, and the step's own error is rethrown — so a failed start leaves no listener, timer, watcher
 * or child process behind, and the caller still sees why (a busy port, an unreachable ClickHouse).
 * `close()` is the normal stop: the same disposal, once.
 *
 * @example
 *   const life = new Lifecycle();
 *   const ch = await life.build('ClickHouse', () => openClickHouse(o), (c) => c.close());
 *   const app = createApp(ch);                                // plain construction: nothing to undo
 *   life.startPhase();
 *   await life.start('HTTP server', () => listen(app, port), (s) => s.close());
 *   …
 *   await life.close();                                        // server, then ClickHouse
 */

type Dispose = () => unknown;

export interface LifecycleOptions {
  /** Where a failing disposal is reported while another error is being rethrown (default: stderr). */
  log?: (line: string) => void;
}

export class Lifecycle {
  private readonly parts: Array<{ name: string; dispose: Dispose }> = [];
  private phase: 'build' | 'start' | 'closed' = 'build';
  private closing?: Promise<void>;
  private readonly log: (line: string) => void;

  constructor(o: LifecycleOptions = {}) {
    this.log = o.log ?? ((l) => process.stderr.write(l + '\n'));
  }

  /** Names of the parts to dispose, in the order they were registered. */
  get registered(): string[] {
    return this.parts.map((p) => p.name);
  }

  get closed(): boolean {
    return this.phase === 'closed';
  }

  /** Phase 1: make a part; `dispose` undoes it. On failure everything built so far is disposed. */
  build<T>(name: string, make: () => T | Promise<T>, dispose?: (value: T) => unknown): Promise<T> {
    if (this.phase !== 'build') return Promise.reject(new Error(`cannot build ${name}: start-up is past its build phase`));
    return this.step(name, make, dispose);
  }

  /** From here on only {@link start}: every part is built. */
  startPhase(): void {
    if (this.phase === 'build') this.phase = 'start';
  }

  /** Phase 2: start a part (the build phase ends); `stop` undoes it. On failure everything is disposed. */
  start<T>(name: string, run: () => T | Promise<T>, stop?: (value: T) => unknown): Promise<T> {
    this.startPhase();
    if (this.phase === 'closed') return Promise.reject(new Error(`cannot start ${name}: already closed`));
    return this.step(name, run, stop);
  }

  /**
   * Register an undo for something about to be made whose own failure may leave half of it behind
   * (a watcher whose start throws after some informers ran): disposed with the rest.
   */
  defer(name: string, dispose: Dispose): void {
    if (this.phase === 'closed') throw new Error(`cannot register ${name}: already closed`);
    this.parts.push({ name, dispose });
  }

  /**
   * Dispose every part, latest first, each once, every one even when an earlier one throws; then
   * throws the first disposal error, if any. Calling it again waits for the same disposal.
   */
  close(): Promise<void> {
    this.phase = 'closed';
    this.closing ??= this.disposeAll().then((errors) => {
      if (errors.length > 0) throw errors[0];
    });
    return this.closing;
  }

  private async step<T>(name: string, make: () => T | Promise<T>, dispose?: (value: T) => unknown): Promise<T> {
    let value: T;
    try {
      value = await make();
    } catch (err) {
      this.phase = 'closed';
      this.closing ??= this.disposeAll().then((errors) => {
        for (const e of errors) this.log(`riptide: while undoing a failed start (${name}): ${e instanceof Error ? e.message : String(e)}`);
      });
      await this.closing;
      throw err;
    }
    if (dispose) {
      if (this.phase === 'closed') {
        // Closed while this step ran (a signal during start-up): undo it at once.
        await dispose(value);
      } else this.parts.push({ name, dispose: () => dispose(value) });
    }
    return value;
  }

  private async disposeAll(): Promise<unknown[]> {
    const errors: unknown[] = [];
    for (let p = this.parts.pop(); p; p = this.parts.pop()) {
      try {
        await p.dispose();
      } catch (err) {
        errors.push(Object.assign(err instanceof Error ? err : new Error(String(err)), { part: p.name }));
      }
    }
    return errors;
  }
}
