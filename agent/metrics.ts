/**
 * A small Prometheus registry shared by every long-running role.
 *
 * Every pipeline stage emits the same counters, named the same way (after vector's component spec):
 * `riptide_<stage>_received_total`, `_sent_total`, `_errors_total`, `_dropped_total{reason=…}`.
 * A drop is never silent: count it here and log it once per burst with {@link BurstLogger}.
 *
 * @example
 *   const dropped = metrics.counter('riptide_capture_dropped_total', 'Messages lost before parsing');
 *   dropped.inc({ reason: 'ringbuf_full' }, 3);
 *   res.end(metrics.render());
 */

export type Labels = Record<string, string>;

function labelKey(labels: Labels | undefined): string {
  if (!labels) return '';
  const keys = Object.keys(labels).sort();
  return keys.map((k) => `${k}="${escapeLabel(labels[k])}"`).join(',');
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

abstract class Metric {
  protected readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge',
  ) {}

  get(labels?: Labels): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`];
    if (this.values.size === 0) lines.push(`${this.name} 0`);
    for (const [k, v] of this.values) lines.push(k ? `${this.name}{${k}} ${v}` : `${this.name} ${v}`);
    return lines.join('\n');
  }
}

export class Counter extends Metric {
  constructor(name: string, help: string) {
    super(name, help, 'counter');
  }
  inc(labels?: Labels, by = 1): void {
    const k = labelKey(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  /** For counters whose source of truth lives elsewhere (a BPF map): set the absolute value. */
  setTotal(value: number, labels?: Labels): void {
    this.values.set(labelKey(labels), value);
  }
}

export class Gauge extends Metric {
  constructor(name: string, help: string) {
    super(name, help, 'gauge');
  }
  set(value: number, labels?: Labels): void {
    this.values.set(labelKey(labels), value);
  }
  add(by: number, labels?: Labels): void {
    const k = labelKey(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
}

export class MetricsRegistry {
  private readonly metrics = new Map<string, Metric>();
  private readonly collectors: Array<() => void> = [];

  counter(name: string, help: string): Counter {
    return this.getOrCreate(name, () => new Counter(name, help), Counter);
  }

  gauge(name: string, help: string): Gauge {
    return this.getOrCreate(name, () => new Gauge(name, help), Gauge);
  }

  /** Run before every render, to pull values from elsewhere (BPF maps, queue sizes). */
  onCollect(fn: () => void): void {
    this.collectors.push(fn);
  }

  render(): string {
    for (const c of this.collectors) c();
    return [...this.metrics.values()].map((m) => m.render()).join('\n') + '\n';
  }

  private getOrCreate<T extends Metric>(name: string, make: () => T, kind: new (n: string, h: string) => T): T {
    const found = this.metrics.get(name);
    if (found) {
      if (!(found instanceof kind)) throw new Error(`metric ${name} already registered with another type`);
      return found;
    }
    const m = make();
    this.metrics.set(name, m);
    return m;
  }
}

/** The process-wide registry; roles render it on `GET /metrics`. */
export const metrics = new MetricsRegistry();

/**
 * Logs a drop once per burst rather than once per event: the first occurrence is logged at once,
 * later ones are summed and logged at most every `intervalMs`.
 */
export class BurstLogger {
  private pending = 0;
  private lastLog = 0;
  constructor(
    private readonly what: string,
    private readonly log: (line: string) => void = (l) => process.stderr.write(l + '\n'),
    private readonly intervalMs = 5000,
  ) {}

  record(count = 1, detail = ''): void {
    this.pending += count;
    const now = Date.now();
    if (now - this.lastLog >= this.intervalMs) {
      this.log(`riptide: ${this.what}: ${this.pending} dropped${detail ? ` (${detail})` : ''}`);
      this.pending = 0;
      this.lastLog = now;
    }
  }
}
