/*
 * NAME
 *   no-signing-in-ingress-transit - the compiled ingress and transit never load signing code
 *
 * DESCRIPTION
 *   Signing belongs to @sluice/report, which only egress and the CLI load;
 *   ingress and transit handle hostile bytes and hold no key. This runs the
 *   compiled pipeline (`sluice dev`, three daemon processes) with every
 *   process tracing each module it loads (support/module-trace.mjs: ES
 *   modules by a load hook, require() by a wrapper, in every thread), sends
 *   a file through, and reads the traces: ingress and transit loaded neither
 *   pqclean, nor @noble/post-quantum, nor any file of packages/report.
 *   Egress is the control: the same trace shows it loading all three (the
 *   WebAssembly signer in its signer workers), so a trace that saw nothing
 *   cannot pass for a clean one.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devConfig } from '../packages/cli/src/dev.js';
import { loadPublicKey, verifyReport } from '../packages/report/src/index.js';
import { Pipeline } from './support/pipeline.js';

const TRACE = fileURLToPath(new URL('./support/module-trace.mjs', import.meta.url));
const SIGNING = [
  ['pqclean', /\/node_modules\/pqclean\//],
  ['@noble/post-quantum', /\/node_modules\/@noble\/post-quantum\//],
  ['@sluice/report', /\/packages\/report\//],
] as const;

/** Loaded - what one daemon process loaded, over all its threads. */
interface Loaded {
  script: string;
  modules: string[];
}

let traceDir: string;
let p: Pipeline;
let byStage: Map<string, Loaded>;

beforeAll(async () => {
  traceDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-module-trace-'));
  p = await Pipeline.start((dir) => devConfig(dir), { env: { NODE_OPTIONS: `--import ${TRACE}`, SLUICE_MODULE_TRACE: traceDir } });
  p.drop('traced.txt', 'a file that goes all the way through\n');
  const found = await p.reportFor('traced.txt');
  expect(found.place).toBe('outbox');
  const text = fs.readFileSync(found.reportPath, 'utf8');
  expect(verifyReport({ reportText: text, publicKey: loadPublicKey(p.publicKey), reportOnly: true }).code).toBe('ok');
  await p.stop();
  byStage = new Map();
  for (const f of fs.readdirSync(traceDir)) {
    const entries = fs
      .readFileSync(path.join(traceDir, f), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { script?: string; thread?: number; esm?: string; cjs?: string });
    const main = entries.find((e) => e.thread === 0);
    const stage = /packages\/(ingress|transit|egress)\/dist\/main\.js$/.exec(main?.script ?? '')?.[1];
    if (!stage) continue; // the CLI supervisor
    const modules = entries.flatMap((e) => (e.esm ? [e.esm] : e.cjs ? [e.cjs] : []));
    byStage.set(stage, { script: main!.script!, modules });
  }
}, 90_000);

afterAll(async () => {
  await p?.stop();
  fs.rmSync(traceDir, { recursive: true, force: true });
});

describe('modules loaded by the compiled daemons, after a file went through', () => {
  it('every stage left a trace that includes its own addon', () => {
    expect([...byStage.keys()].sort()).toEqual(['egress', 'ingress', 'transit']);
    for (const [stage, { modules }] of byStage) {
      expect(modules.some((m) => m.endsWith('/packages/native/build/Release/sluice_native.node')), stage).toBe(true);
    }
  });

  it.each(['ingress', 'transit'])('%s loads no signing code', (stage) => {
    const { modules } = byStage.get(stage)!;
    for (const [name, pattern] of SIGNING) {
      expect(modules.filter((m) => pattern.test(m)), `${stage} loaded ${name}`).toEqual([]);
    }
  });

  it('egress loads all of it (the control)', () => {
    const { modules } = byStage.get('egress')!;
    for (const [name, pattern] of SIGNING) expect(modules.some((m) => pattern.test(m)), name).toBe(true);
    expect(modules.some((m) => m.endsWith('/node_modules/pqclean/wasm/index.js'))).toBe(true);
  });
});
