// Operators search logs by event name: every event a stage can log must be
// documented in docs/logging.md.
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' || e.name === 'dist' ? [] : sources(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

describe('docs/logging.md', () => {
  it('documents every event the stages log', () => {
    const doc = fs.readFileSync(path.join(root, 'docs/logging.md'), 'utf8');
    const events = new Set<string>();
    for (const pkg of ['core', 'ingress', 'transit', 'egress', 'cli']) {
      for (const file of sources(path.join(root, 'packages', pkg, 'src'))) {
        const text = fs.readFileSync(file, 'utf8').replace(/^\s*\*.*$/gm, ''); // not doc comments
        for (const m of text.matchAll(/event: '([a-z-]+)'/g)) events.add(m[1]!);
        for (const m of text.matchAll(/fatal\('([a-z-]+)'/g)) events.add(m[1]!);
      }
    }
    expect(events.size).toBeGreaterThan(30);
    const missing = [...events].filter((e) => !doc.includes(`\`${e}\``));
    expect(missing).toEqual([]);
  });
});
