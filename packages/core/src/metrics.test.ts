import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LabelRefused, Registry, writeAtomic } from './metrics.js';
import { Station, clamdSignatureTime, procStart, startStatus } from './status.js';
import { createLogger } from './log.js';
import { parseProm, value } from '../../../test/support/prom.js';

describe('metrics', () => {
  it('refuses a label value outside the declared list: no series from input', () => {
    const r = new Registry();
    const c = r.counter('x_total', 'x', { outcome: ['a', 'b'] });
    c.inc({ outcome: 'a' });
    expect(() => c.inc({ outcome: 'alice; rm -rf' })).toThrow(LabelRefused);
    expect(() => c.inc({})).toThrow(LabelRefused);
    expect(() => c.inc({ outcome: 'a', extra: 'a' })).toThrow(LabelRefused);
    expect(r.seriesBound()).toBe(2);
    expect(parseProm(r.exposition()).filter((s) => s.name === 'x_total')).toHaveLength(1);
  });

  it('writes text a strict reader accepts: escaped label values, cumulative buckets, +Inf, sum and count', () => {
    const r = new Registry();
    r.gauge('g', 'a "gauge"\\ with\nnewline', { v: ['a"b\\c\nd'] }).set({ v: 'a"b\\c\nd' }, 1.5);
    const h = r.histogram('h_seconds', 'h', [1, 5], { verdict: ['accepted'] });
    for (const v of [0.5, 2, 7]) h.observe({ verdict: 'accepted' }, v);
    const samples = parseProm(r.exposition());
    expect(value(samples, 'g', { v: 'a"b\\c\nd' })).toBe(1.5);
    expect(value(samples, 'h_seconds_bucket', { verdict: 'accepted', le: '1' })).toBe(1);
    expect(value(samples, 'h_seconds_bucket', { verdict: 'accepted', le: '5' })).toBe(2);
    expect(value(samples, 'h_seconds_bucket', { verdict: 'accepted', le: '+Inf' })).toBe(3);
    expect(value(samples, 'h_seconds_sum', { verdict: 'accepted' })).toBe(9.5);
    expect(value(samples, 'h_seconds_count', { verdict: 'accepted' })).toBe(3);
  });

  it('a gauge whose reading throws is written as NaN, not left out', () => {
    const r = new Registry();
    r.gauge('q', 'q').set({}, () => {
      throw new Error('gone');
    });
    expect(value(parseProm(r.exposition()), 'q')).toBeNaN();
  });

  it('writeAtomic replaces the file by a rename, with the mode asked for, and leaves no temporary', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-metrics-'));
    try {
      writeAtomic(dir, 'a.prom', 'one\n', 0o640);
      const before = fs.statSync(path.join(dir, 'a.prom')).ino;
      writeAtomic(dir, 'a.prom', 'two\n', 0o640);
      expect(fs.readFileSync(path.join(dir, 'a.prom'), 'utf8')).toBe('two\n');
      expect(fs.statSync(path.join(dir, 'a.prom')).ino).not.toBe(before);
      expect(fs.statSync(path.join(dir, 'a.prom')).mode & 0o777).toBe(0o640);
      expect(fs.readdirSync(dir)).toEqual(['a.prom']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('status', () => {
  it("clamd's VERSION answer gives the signature database's date; anything else gives null", () => {
    expect(clamdSignatureTime('ClamAV 1.4.6/27400/Tue Dec  3 09:41:04 2024')).toBe('2024-12-03T09:41:04.000Z');
    expect(clamdSignatureTime('ClamAV 1.4.6')).toBeNull();
    expect(clamdSignatureTime('yara rules sha256:abc')).toBeNull();
  });

  it('procStart reads this process start time, and null for no such process', () => {
    expect(procStart('self')).toMatch(/^\d+$/);
    expect(procStart(process.pid)).toBe(procStart('self'));
    expect(procStart(2 ** 22 + 1)).toBeNull();
  });

  it('counts outcomes, keeps the last hour in minute buckets, and writes both files 0640 in a 0750 directory', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-status-'));
    try {
      const st = new Station();
      st.init('egress', '9.9.9', new Date(0));
      const now = Date.now();
      st.file('accepted', 100, now - 2 * 3600_000); // two hours ago: since start, not in the last hour
      st.file('accepted', 10, now);
      st.file('rejected', undefined, now);
      st.delivered('accepted', new Date(now - 3000).toISOString(), 'a\u001b[31m.txt', now);
      const pub = startStatus({ dir, group: null, intervalMs: 60_000 }, createLogger('egress', 'silent'), st);
      pub.stop('stopped');
      const doc = JSON.parse(fs.readFileSync(path.join(dir, 'egress', 'egress.json'), 'utf8'));
      expect(doc).toMatchObject({ stage: 'egress', state: 'stopped', version: '9.9.9', pid: process.pid, bytes: 110 });
      expect(doc.files).toMatchObject({ accepted: 2, rejected: 1 });
      expect(doc.lastHour).toMatchObject({ accepted: 1, rejected: 1 });
      expect(doc.lastDelivery.stored).not.toContain('\u001b'); // escaped for the operator's terminal
      const prom = parseProm(fs.readFileSync(path.join(dir, 'egress', 'egress.prom'), 'utf8'));
      expect(value(prom, 'sluice_files_total', { stage: 'egress', outcome: 'accepted' })).toBe(2);
      expect(value(prom, 'sluice_transfer_duration_seconds_count', { verdict: 'accepted' })).toBe(1);
      expect(value(prom, 'sluice_transfer_duration_seconds_bucket', { verdict: 'accepted', le: '2.5' })).toBe(0);
      expect(value(prom, 'sluice_transfer_duration_seconds_bucket', { verdict: 'accepted', le: '5' })).toBe(1);
      expect(fs.statSync(path.join(dir, 'egress')).mode & 0o7777).toBe(0o750);
      for (const f of ['egress.json', 'egress.prom']) expect(fs.statSync(path.join(dir, 'egress', f)).mode & 0o777).toBe(0o640);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a status.dir that does not exist: the stage runs on without files (status-unavailable)', () => {
    const st = new Station();
    st.init('transit', '1');
    const lines: string[] = [];
    const log = { warn: (o: { event: string }) => lines.push(o.event) } as unknown as ReturnType<typeof createLogger>;
    const pub = startStatus({ dir: '/nonexistent/sluice-status', group: null, intervalMs: 60_000 }, log, st);
    pub.stop('stopped');
    expect(lines).toEqual(['status-unavailable']);
    expect(fs.existsSync('/nonexistent/sluice-status')).toBe(false);
  });
});
