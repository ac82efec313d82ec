import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { acceptedContentFor, nameExtension } from './extension.js';
import { sanitizeName, splitExtension } from '@sluice/core';

describe('nameExtension', () => {
  it.each([
    ['photo.png', 'png'],
    ['PHOTO.PNG', 'png'],
    ['archive.tar.gz', 'gz'],
    ['README', ''],
    ['.bashrc', ''],
    ['evil.exe.', 'exe'],
    ['evil.exe  . ', 'exe'],
    ['invoice\u202Efdp.exe', 'exe'],
    ['x.p\u200Bng', 'png'],
    ['dir/sub\\file.pdf', 'pdf'],
    ['x.sluice.json', 'sluice_json'],
    ['a.has space', ''],
    [`a.${'x'.repeat(30)}`, ''],
    [`${'x'.repeat(196)}.exe${'z'.repeat(30)}`, 'exe'], // the stored name is cut to ...x.exe
  ])('%j -> %j', (name, ext) => {
    expect(nameExtension(name)).toBe(ext);
  });

  it('is a short lowercase extension without separators or white space (property)', () => {
    const nasty = fc.constantFrom('.', '..', ' ', '/', '\\', '\n', '\u202e', '\u200b', '\ufeff', '-', 'pdf', 'PNG', 'é', '\u{1F600}', '.sluice.json', '\uD800');
    const names = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 60 }),
      fc.array(nasty, { maxLength: 30 }).map((p) => p.join('')),
      fc
        .tuple(fc.integer({ min: 150, max: 260 }), fc.array(nasty, { maxLength: 12 }))
        .map(([n, p]) => 'x'.repeat(n) + p.join('')),
    );
    fc.assert(
      fc.property(names, (name) => {
        const ext = nameExtension(name);
        expect(ext).toBe(ext.toLowerCase());
        expect(ext).not.toMatch(/[\s/\\.\p{Cc}\p{Cf}]/u);
        expect(Buffer.byteLength(ext)).toBeLessThanOrEqual(23);
        expect(sanitizeName(name).toLowerCase().endsWith(ext === '' ? '' : `.${ext}`)).toBe(true);
        expect(splitExtension(sanitizeName(name)).ext.toLowerCase()).toBe(ext === '' ? '' : `.${ext}`);
      }),
      { numRuns: 5000 },
    );
  });
});

describe('acceptedContentFor', () => {
  it.each([
    ['png', ['png']],
    ['jpeg', ['jpg']],
    ['jpg', ['jpg']],
    ['txt', ['txt']],
    ['csv', ['txt']],
    ['md', ['txt']],
    ['', ['txt']],
    ['json', ['json']],
    ['docx', ['docx', 'zip']],
    ['zip', ['zip']],
    ['mov', ['mp4', 'm4v', 'm4a', 'm4b', 'm4p', 'mov', '3gp', '3g2', 'f4v', 'f4a', 'f4b', 'f4p']],
    ['xml', ['xml', 'txt']],
    ['svg', ['xml', 'txt']],
    ['eps', ['eps', 'ps', 'txt']],
    ['doc', ['cfb']],
    ['so', ['elf']],
    ['dll', ['exe']],
    ['bin', ['unknown', 'txt']],
    ['tgz', ['gz', 'tar.gz']],
  ])('%j', (ext, ids) => {
    expect(acceptedContentFor(ext)).toEqual(ids);
  });
});
