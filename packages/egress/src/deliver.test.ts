// deliver: egress's descriptor budget, checked at start against its descriptor limit.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { checkDescriptorBudget, openFileLimit, DESCRIPTOR_RESERVE, DESCRIPTORS_PER_DELIVERY } from './deliver.js';

describe('checkDescriptorBudget', () => {
  it('passes when maxInFlight deliveries and the reserve fit, at the edge too', () => {
    expect(() => checkDescriptorBudget(32, 4096)).not.toThrow();
    expect(() => checkDescriptorBudget(1024, 4096)).not.toThrow(); // the highest allowed value fits the unit's LimitNOFILE
    expect(() => checkDescriptorBudget(10, 10 * DESCRIPTORS_PER_DELIVERY + DESCRIPTOR_RESERVE)).not.toThrow();
    expect(() => checkDescriptorBudget(1024, null)).not.toThrow(); // no limit known: nothing to check
  });

  it('refuses a limit one short, naming the key, the limit and the highest maxInFlight that fits', () => {
    const limit = 10 * DESCRIPTORS_PER_DELIVERY + DESCRIPTOR_RESERVE - 1;
    expect(() => checkDescriptorBudget(10, limit)).toThrow(
      new RegExp(`egress\\.maxInFlight 10 needs ${limit + 1} descriptors .* over the descriptor limit ${limit} \\(LimitNOFILE\\): lower egress\\.maxInFlight to at most 9 or raise LimitNOFILE`),
    );
    expect(() => checkDescriptorBudget(1, 64)).toThrow(/to at most 0 or raise LimitNOFILE/);
  });
});

describe('openFileLimit', () => {
  it("is this process's soft RLIMIT_NOFILE, as prlimit reports it", () => {
    const soft = execFileSync('prlimit', ['--pid', String(process.pid), '--nofile', '--raw', '--noheadings', '--output=SOFT'], { encoding: 'utf8' }).trim();
    expect(openFileLimit()).toBe(soft === 'unlimited' ? null : Number(soft));
  });
});
