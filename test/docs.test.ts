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

/** logFields - the keys of every object literal that starts `{ event: '...'`, as logged (top level only). */
function logFields(text: string): Set<string> {
  const fields = new Set<string>();
  for (const m of text.matchAll(/\{\s*event: '[a-z-]+'/g)) {
    // Walk to the matching brace, splitting on top-level commas, skipping strings and template literals.
    let i = m.index! + 1;
    let depth = 0;
    let part = '';
    const parts: string[] = [];
    for (; i < text.length; i++) {
      const ch = text[i]!;
      if (ch === "'" || ch === '"' || ch === '`') {
        const end = text.indexOf(ch, i + 1);
        part += ch.repeat(2); // the content is not a key
        i = end;
        continue;
      }
      if ('{[('.includes(ch)) depth++;
      if ('}])'.includes(ch)) {
        if (depth === 0) break;
        depth--;
      }
      if (ch === ',' && depth === 0) {
        parts.push(part);
        part = '';
      } else part += ch;
    }
    parts.push(part);
    for (const p of parts) {
      const key = /^\s*([A-Za-z_$][\w$]*)\s*(?::|$)/.exec(p);
      if (key && !p.trim().startsWith('...')) fields.add(key[1]!);
    }
  }
  return fields;
}

describe('docs/logging.md fields', () => {
  it('documents every field the stages put on a log line', () => {
    const doc = fs.readFileSync(path.join(root, 'docs/logging.md'), 'utf8');
    const fields = new Set<string>();
    for (const pkg of ['core', 'ingress', 'transit', 'egress', 'cli']) {
      for (const file of sources(path.join(root, 'packages', pkg, 'src'))) {
        for (const f of logFields(fs.readFileSync(file, 'utf8').replace(/^\s*\*.*$/gm, ''))) fields.add(f);
      }
    }
    expect(fields.size).toBeGreaterThan(20);
    expect(fields).toContain('peer');
    expect(fields).toContain('childPid');
    const missing = [...fields].filter((f) => !doc.includes(`\`${f}\``));
    expect(missing).toEqual([]);
  });
});
