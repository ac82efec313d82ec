// The addon's build, as `npm run build --workspace=@sluice/native` runs it, in
// a scratch copy of this package: it needs no network (node-gyp is pointed at
// the installed Node headers), and its warnings really are -Wall -Wextra
// -Werror. Node's common.gypi adds -Wno-unused-parameter, which would
// silently switch off part of -Wextra; binding.gyp removes it again, and a
// probe with an unused parameter proves that the compiler now refuses it.
// binding.gyp has one target, sluice_native: this package compiles no C but
// its own (ML-DSA signing comes from the npm package pqclean, in @sluice/report).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const PKG = fileURLToPath(new URL('..', import.meta.url));
const NODE_GYP = fileURLToPath(new URL('../../../node_modules/node-gyp/bin/node-gyp.js', import.meta.url));
const SOURCE = 'src/sluice_native.c';

/** No network namespace without root (or user namespaces); then the build still runs, just not provably offline. */
const unshareWorks = (() => {
  try {
    execFileSync('unshare', ['-n', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-native-build-'));
  fs.mkdirSync(path.join(dir, 'src'));
  fs.mkdirSync(path.join(dir, 'home'));
  fs.copyFileSync(path.join(PKG, 'binding.gyp'), path.join(dir, 'binding.gyp'));
  for (const f of fs.readdirSync(path.join(PKG, 'src')).filter((f) => /\.[ch]$/.test(f))) {
    fs.copyFileSync(path.join(PKG, 'src', f), path.join(dir, 'src', f)); // every C source and header binding.gyp names
  }
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** gyp - run node-gyp in the scratch copy the way package.json's build script does; no network, an empty HOME (no header cache). */
function gyp(...args: string[]) {
  const argv = [process.execPath, NODE_GYP, ...args, '--nodedir=/usr', '--loglevel=warn'];
  const [cmd, rest] = unshareWorks ? ['unshare', ['-n', ...argv]] : [argv[0]!, argv.slice(1)];
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: path.join(dir, 'home') };
  const r = spawnSync(cmd, rest, { cwd: dir, env, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: `${r.stdout}\n${r.stderr}` };
}

describe('building the addon', () => {
  it(`builds from binding.gyp with only the installed Node headers${unshareWorks ? ', without a network' : ' (network not isolated: unshare -n unavailable)'}`, () => {
    const r = gyp('rebuild');
    expect(r.code, r.out).toBe(0);
    expect(fs.readdirSync(path.join(dir, 'build/Release')).filter((f) => f.endsWith('.node'))).toEqual(['sluice_native.node']);
    // The flags the compiler got: ours, and not Node's exemption from -Wunused-parameter.
    const mk = fs.readFileSync(path.join(dir, 'build/sluice_native.target.mk'), 'utf8');
    const release = /CFLAGS_Release :=([\s\S]*?)\n\n/.exec(mk)![1]!;
    expect(release).toMatch(/-Wall\b/);
    expect(release).toMatch(/-Wextra\b/);
    expect(release).toMatch(/-Werror\b/);
    expect(release).not.toMatch(/-Wno-/);
  }, 150_000);

  it.each([
    ['an unused parameter (-Wextra)', 'int sluice_probe(int unused_arg);\nint sluice_probe(int unused_arg) { return 0; }\n', /unused parameter/],
    ['a signed/unsigned comparison (-Wextra)', 'int sluice_probe(unsigned a, int b);\nint sluice_probe(unsigned a, int b) { return a < b; }\n', /comparison of integer expressions of different signedness/],
    ['an unused variable (-Wall)', 'void sluice_probe(void);\nvoid sluice_probe(void) { int unused_var; }\n', /unused variable/],
  ])('refuses to compile %s: warnings are errors', (_what, probe, warning) => {
    const original = fs.readFileSync(path.join(PKG, SOURCE), 'utf8');
    fs.writeFileSync(path.join(dir, SOURCE), `${original}\n${probe}`);
    try {
      const r = gyp('build');
      expect(r.code, r.out).not.toBe(0);
      expect(r.out).toMatch(warning);
      expect(r.out).toMatch(/\[-Werror/);
    } finally {
      fs.writeFileSync(path.join(dir, SOURCE), original);
    }
  }, 150_000);
});
