/*
 * NAME
 *   metrics - counters, gauges and histograms in the Prometheus text format
 *
 * SYNOPSIS
 *   const reg = new Registry();
 *   const files = reg.counter('sluice_files_total', 'Files by outcome.', { stage: ['ingress'], outcome: ['done', 'held'] });
 *   files.inc({ stage: 'ingress', outcome: 'done' });
 *   reg.gauge('sluice_queue_files', 'Files waiting.', { queue: ['spooled'] }).set({ queue: 'spooled' }, 3);
 *   reg.histogram('sluice_transfer_duration_seconds', 'Pickup to report.', [1, 5, 30], {}).observe({}, 2.4);
 *   const text = reg.exposition();            // text format 0.0.4, for node_exporter's textfile collector
 *   writeAtomic(dir, 'ingress.prom', text, 0o640);
 *
 * DESCRIPTION
 *   A metric is declared with its label names and, for each label, the
 *   fixed list of values it may take. A value outside the list is refused
 *   (LabelRefused): no series is ever made from a string an uploader or a
 *   peer chose, so the number of series is known when the metric is
 *   declared (seriesBound) and docs/capacity.md states it. Every series of
 *   a counter or histogram is written from the start, at zero, so that
 *   rate() and absent() work from the first scrape.
 *
 *   The text follows the Prometheus exposition format 0.0.4: `# HELP`,
 *   `# TYPE`, one line per series, label values escaped (`\\`, `\"`, `\n`),
 *   histograms as cumulative `_bucket{le=...}` lines ending in `le="+Inf"`,
 *   then `_sum` and `_count`.
 *
 *   writeAtomic writes a temporary file beside the target and renames it
 *   over the target, so a reader (node_exporter, `sluice status`) sees the
 *   old file or the new one, never half of one. It does not fsync: these
 *   files are rewritten every few seconds and a power cut that loses the
 *   last one loses nothing a restarted stage does not write again.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

/** The label names of a metric, each with the only values it may take. */
export type LabelSpec = Readonly<Record<string, readonly string[]>>;
export type Labels = Readonly<Record<string, string>>;

/** LabelRefused - a label set outside the metric's declared values (a bug in the caller, never input). */
export class LabelRefused extends Error {
  constructor(metric: string, labels: Labels) {
    super(`${metric}: label set ${JSON.stringify(labels)} is not one of the declared values`);
    this.name = 'LabelRefused';
  }
}

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** escapeLabelValue - the exposition format's escaping of a label value. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** formatValue - a sample value as the text format writes it. */
function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

abstract class Metric {
  protected readonly series = new Map<string, Labels>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labels: LabelSpec,
  ) {
    if (!NAME_RE.test(name)) throw new Error(`bad metric name ${JSON.stringify(name)}`);
    for (const [l, values] of Object.entries(labels)) {
      if (!LABEL_RE.test(l) || l === 'le') throw new Error(`${name}: bad label name ${JSON.stringify(l)}`);
      if (values.length === 0) throw new Error(`${name}: label ${l} has no values`);
    }
  }

  /** seriesBound - the most series this metric can ever have (histograms: per bucket line). */
  seriesBound(): number {
    return Object.values(this.labels).reduce((n, v) => n * v.length, 1);
  }

  /** key - the series key of a label set, after checking it against the declared values. */
  protected key(labels: Labels): string {
    const names = Object.keys(this.labels);
    if (Object.keys(labels).length !== names.length) throw new LabelRefused(this.name, labels);
    for (const n of names) {
      const v = labels[n];
      if (v === undefined || !this.labels[n]!.includes(v)) throw new LabelRefused(this.name, labels);
    }
    const k = names.map((n) => `${n}="${escapeLabelValue(labels[n]!)}"`).join(',');
    if (!this.series.has(k)) this.series.set(k, Object.fromEntries(names.map((n) => [n, labels[n]!])));
    return k;
  }

  protected header(type: string): string {
    return `# HELP ${this.name} ${this.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n# TYPE ${this.name} ${type}\n`;
  }

  abstract exposition(): string;
}

/** Counter - a value that only goes up (since the process started). */
export class Counter extends Metric {
  private readonly values = new Map<string, number>();

  inc(labels: Labels = {}, by = 1): void {
    if (!(by >= 0) || !Number.isFinite(by)) throw new Error(`${this.name}: a counter goes up by a finite amount, not ${by}`);
    const k = this.key(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }

  get(labels: Labels = {}): number {
    return this.values.get(this.key(labels)) ?? 0;
  }

  /** zero - make a series visible at 0 before its first event. */
  zero(labels: Labels): void {
    const k = this.key(labels);
    if (!this.values.has(k)) this.values.set(k, 0);
  }

  exposition(): string {
    let out = this.header('counter');
    for (const [k, v] of this.values) out += `${this.name}${k ? `{${k}}` : ''} ${formatValue(v)}\n`;
    return out;
  }
}

/** Gauge - a value that goes up and down, set directly or read from a function when written. */
export class Gauge extends Metric {
  private readonly values = new Map<string, number | (() => number)>();

  set(labels: Labels, v: number | (() => number)): void {
    this.values.set(this.key(labels), v);
  }

  get(labels: Labels = {}): number | undefined {
    const v = this.values.get(this.key(labels));
    return typeof v === 'function' ? v() : v;
  }

  exposition(): string {
    let out = this.header('gauge');
    for (const [k, v] of this.values) {
      let n: number;
      try {
        n = typeof v === 'function' ? v() : v;
      } catch {
        n = NaN; // a reading that failed is written as NaN, not left out: absent() would mean "stage down"
      }
      out += `${this.name}${k ? `{${k}}` : ''} ${formatValue(n)}\n`;
    }
    return out;
  }
}

/** Histogram - observations counted into fixed cumulative buckets, with their sum and count. */
export class Histogram extends Metric {
  private readonly data = new Map<string, { buckets: number[]; sum: number; count: number }>();

  constructor(name: string, help: string, readonly bounds: readonly number[], labels: LabelSpec) {
    super(name, help, labels);
    if (bounds.length === 0 || bounds.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= bounds[i - 1]!))) {
      throw new Error(`${name}: bucket bounds must be finite and increasing`);
    }
  }

  override seriesBound(): number {
    return super.seriesBound() * (this.bounds.length + 3);
  }

  private entry(labels: Labels) {
    const k = this.key(labels);
    let e = this.data.get(k);
    if (!e) this.data.set(k, (e = { buckets: this.bounds.map(() => 0), sum: 0, count: 0 }));
    return e;
  }

  observe(labels: Labels, v: number): void {
    if (!Number.isFinite(v)) return;
    const e = this.entry(labels);
    for (let i = 0; i < this.bounds.length; i++) if (v <= this.bounds[i]!) e.buckets[i]!++;
    e.sum += v;
    e.count++;
  }

  zero(labels: Labels): void {
    this.entry(labels);
  }

  exposition(): string {
    let out = this.header('histogram');
    for (const [k, e] of this.data) {
      const pre = k ? `${k},` : '';
      this.bounds.forEach((b, i) => (out += `${this.name}_bucket{${pre}le="${formatValue(b)}"} ${e.buckets[i]}\n`));
      out += `${this.name}_bucket{${pre}le="+Inf"} ${e.count}\n`;
      out += `${this.name}_sum${k ? `{${k}}` : ''} ${formatValue(e.sum)}\n`;
      out += `${this.name}_count${k ? `{${k}}` : ''} ${e.count}\n`;
    }
    return out;
  }
}

/** Registry - the metrics of one process, written together. */
export class Registry {
  private readonly metrics: Metric[] = [];

  private add<M extends Metric>(m: M): M {
    if (this.metrics.some((x) => x.name === m.name)) throw new Error(`metric ${m.name} declared twice`);
    this.metrics.push(m);
    return m;
  }

  counter(name: string, help: string, labels: LabelSpec = {}): Counter {
    return this.add(new Counter(name, help, labels));
  }

  gauge(name: string, help: string, labels: LabelSpec = {}): Gauge {
    return this.add(new Gauge(name, help, labels));
  }

  histogram(name: string, help: string, bounds: readonly number[], labels: LabelSpec = {}): Histogram {
    return this.add(new Histogram(name, help, bounds, labels));
  }

  /** seriesBound - the most lines of samples the exposition can have. */
  seriesBound(): number {
    return this.metrics.reduce((n, m) => n + m.seriesBound(), 0);
  }

  exposition(): string {
    return this.metrics.map((m) => m.exposition()).join('');
  }
}

/** writeAtomic - replace dir/name with `data` by a rename, so readers never see a partial file. */
export function writeAtomic(dir: string, name: string, data: string, mode: number): void {
  const tmp = path.join(dir, `.tmp-${name}-${randomBytes(4).toString('hex')}`);
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, mode);
  try {
    fs.writeSync(fd, data);
    fs.fchmodSync(fd, mode); // the umask must not narrow (or the process's widen) what the operators' group may read
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, path.join(dir, name));
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}
