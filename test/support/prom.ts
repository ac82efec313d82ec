/*
 * NAME
 *   prom - a strict reader of the Prometheus text exposition format (0.0.4), for tests
 *
 * SYNOPSIS
 *   const samples = parseProm(text);        // throws, naming the line, on anything malformed
 *   value(samples, 'sluice_files_total', { stage: 'egress', outcome: 'accepted' });
 *
 * DESCRIPTION
 *   Written from the format's description (prometheus.io, "Exposition
 *   formats"): `# HELP name text` and `# TYPE name type` at most once per
 *   metric, before its samples; every sample's metric declared by a TYPE
 *   line (histogram samples as name_bucket/_sum/_count); names and label
 *   names of the allowed characters; label values quoted with only `\\`,
 *   `\"` and `\n` escapes; no label repeated; values Go's ParseFloat
 *   accepts (or NaN/+Inf/-Inf); a histogram's buckets cumulative, ending
 *   in le="+Inf" equal to its _count; the text ending in a newline.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(s: string, where: string): number {
  if (s === 'NaN') return NaN;
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new Error(`${where}: bad value ${JSON.stringify(s)}`);
  return Number(s);
}

function parseLabels(s: string, where: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < s.length) {
    const eq = s.indexOf('=', i);
    if (eq < 0) throw new Error(`${where}: label without '='`);
    const name = s.slice(i, eq);
    if (!LABEL.test(name)) throw new Error(`${where}: bad label name ${JSON.stringify(name)}`);
    if (Object.hasOwn(labels, name)) throw new Error(`${where}: label ${name} repeated`);
    if (s[eq + 1] !== '"') throw new Error(`${where}: label value not quoted`);
    let v = '';
    let j = eq + 2;
    for (;;) {
      const c = s[j];
      if (c === undefined) throw new Error(`${where}: unterminated label value`);
      if (c === '"') break;
      if (c === '\\') {
        const d = s[j + 1];
        if (d === '\\') v += '\\';
        else if (d === '"') v += '"';
        else if (d === 'n') v += '\n';
        else throw new Error(`${where}: bad escape \\${d}`);
        j += 2;
        continue;
      }
      if (c === '\n') throw new Error(`${where}: raw newline in a label value`);
      v += c;
      j++;
    }
    labels[name] = v;
    i = j + 1;
    if (i < s.length) {
      if (s[i] !== ',') throw new Error(`${where}: expected ',' between labels`);
      i++;
    }
  }
  return labels;
}

/** parseProm - every sample of the text; throws on the first malformed line. */
export function parseProm(text: string): Sample[] {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('the text does not end in a newline');
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const seenSamples = new Set<string>();
  const samples: Sample[] = [];
  text.split('\n').slice(0, -1).forEach((line, n) => {
    const where = `line ${n + 1}`;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) return; // a comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (!NAME.test(name)) throw new Error(`${where}: bad metric name ${name}`);
      if (kind === 'TYPE') {
        if (types.has(name)) throw new Error(`${where}: second TYPE for ${name}`);
        if (!TYPES.has(rest)) throw new Error(`${where}: unknown type ${rest}`);
        if ([...seenSamples].some((s) => s === name || s.startsWith(`${name}_`))) throw new Error(`${where}: TYPE of ${name} after its samples`);
        types.set(name, rest);
      } else {
        if (helps.has(name)) throw new Error(`${where}: second HELP for ${name}`);
        helps.add(name);
      }
      return;
    }
    if (line.trim() === '') throw new Error(`${where}: empty line`);
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
    if (!m) throw new Error(`${where}: not a sample: ${JSON.stringify(line)}`);
    const [, name, labelText, valueText] = m as unknown as [string, string, string | undefined, string];
    const base = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    const type = types.get(base);
    if (!type) throw new Error(`${where}: sample of ${name} with no TYPE line before it`);
    if (base !== name && type !== 'histogram' && type !== 'summary') throw new Error(`${where}: ${name} suffix on a ${type}`);
    seenSamples.add(name);
    samples.push({ name, labels: labelText ? parseLabels(labelText, where) : {}, value: parseValue(valueText, where) });
  });
  checkHistograms(samples, types);
  return samples;
}

/** checkHistograms - buckets cumulative and ending in +Inf, equal to _count, per label set. */
function checkHistograms(samples: Sample[], types: Map<string, string>): void {
  for (const [name, type] of types) {
    if (type !== 'histogram') continue;
    const groups = new Map<string, Sample[]>();
    for (const s of samples.filter((x) => x.name === `${name}_bucket`)) {
      const { le, ...rest } = s.labels;
      if (le === undefined) throw new Error(`${name}_bucket without le`);
      const k = JSON.stringify(rest);
      groups.set(k, [...(groups.get(k) ?? []), s]);
    }
    for (const [k, buckets] of groups) {
      let prevLe = -Infinity;
      let prev = 0;
      for (const b of buckets) {
        const le = parseValue(b.labels.le!, name);
        if (le <= prevLe) throw new Error(`${name}${k}: buckets not in increasing le`);
        if (b.value < prev) throw new Error(`${name}${k}: buckets not cumulative`);
        prevLe = le;
        prev = b.value;
      }
      if (prevLe !== Infinity) throw new Error(`${name}${k}: no le="+Inf" bucket`);
      const count = samples.find((s) => s.name === `${name}_count` && JSON.stringify(s.labels) === k);
      if (!count || count.value !== prev) throw new Error(`${name}${k}: _count differs from the +Inf bucket`);
    }
  }
}

/** value - the one sample with this name and exactly these labels, or undefined. */
export function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const want = JSON.stringify(Object.entries(labels).sort());
  return samples.find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want)?.value;
}
