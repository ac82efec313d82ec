// The addon's shared object exports its module entry and nothing else: the
// functions its C files share are declared with hidden visibility
// (sluice_native.h), so no symbol of Node's, OpenSSL's or libuv's with the
// same name can take the place of one of ours at load time.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ADDON = fileURLToPath(new URL('../build/Release/sluice_native.node', import.meta.url));

/** hasNm - binutils' nm is on PATH. */
const hasNm = (() => {
  try {
    execFileSync('nm', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('the addon\'s exported symbols', () => {
  it.skipIf(!hasNm)(`are the N-API module entry points only${hasNm ? '' : ' [skipped: nm not installed]'}`, () => {
    const out = execFileSync('nm', ['-D', '--defined-only', ADDON], { encoding: 'utf8' });
    const names = out.split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/).pop()!).sort();
    expect(names).toEqual(['napi_register_module_v1', 'node_api_module_get_api_version_v1']);
  });
});
