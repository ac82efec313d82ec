import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ACTIVE_IDS, ACTIVE_TYPES, ActiveScanner, activeTypeOfExtension, settleActive } from './active.js';
import { KNOWN_CONTENT_IDS, detectContentOf } from './content.js';
import { fileTypeCheck } from './file-type.js';
import { TextScanner } from './text.js';

/** typesIn - the active types ActiveScanner finds in text pushed in pieces of `step` characters. */
function typesIn(text: string, step = text.length || 1): string[] {
  const a = new ActiveScanner();
  for (let i = 0; i < text.length; i += step) a.push(text.slice(i, i + step));
  return settleActive(a.end()).map((f) => f.type).sort();
}

const SAMPLES: Record<string, { text: string; types: string[] }> = {
  shebangShell: { text: '#!/bin/sh\necho hi\n', types: ['shell'] },
  shebangBomEnv: { text: '\uFEFF#!/usr/bin/env -S python3 -u\nprint(1)\n', types: ['python'] },
  shebangPerl: { text: '#! /usr/bin/perl -w\nprint 1;\n', types: ['perl'] },
  shebangNode: { text: '#!/usr/bin/env node\nconsole.log(1)\n', types: ['javascript'] },
  shebangPwsh: { text: '#!/usr/bin/pwsh\nWrite-Host 1\n', types: ['powershell'] },
  shebangRuby: { text: '#!/usr/bin/ruby\nputs 1\n', types: ['ruby'] },
  batch: { text: 'rem setup\r\n  @ECHO OFF\r\ndel /q *\r\n', types: ['batch'] },
  batchLastLine: { text: '@echo off', types: ['batch'] },
  desktop: { text: '# a launcher\n[Desktop Entry]\nType=Application\nExec=sh -c id\n', types: ['desktop'] },
  hta: { text: '<HTA:APPLICATION id="a" />\n<p>x</p>\n', types: ['hta'] },
  htmlDoctype: { text: 'notes\n<!DOCTYPE html>\n<p>hello</p>\n', types: ['html'] },
  htmlTag: { text: '<HTML><BODY>hi</BODY></HTML>\n', types: ['html'] },
  htmlIframe: { text: 'see <iframe src="https://x.example/">\n', types: ['html'] },
  htmlEvent: { text: '<body onload="steal()">\n', types: ['html', 'javascript'] },
  script: { text: 'plain words, then <script src=//x.example/a.js></script>\n', types: ['javascript'] },
  svgStatic: { text: '<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg"><circle r="4"/></svg>\n', types: ['svg'] },
  svgScript: { text: '<svg xmlns="http://www.w3.org/2000/svg">\n<script>alert(1)</script></svg>\n', types: ['javascript', 'svg'] },
  svgOnload: { text: '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', types: ['javascript', 'svg'] },
  svgHref: { text: '<svg><a href="JavaScript :alert(1)"><text>x</text></a></svg>', types: ['javascript', 'svg'] },
  xml: { text: '<?xml version="1.0"?>\n<order id="1"/>\n', types: ['xml'] },
  xmlEntity: { text: '<svg><!ENTITY xxe SYSTEM "file:///etc/passwd"></svg>', types: ['svg', 'xml'] },
  php: { text: 'GIF89a<?php system($_GET["c"]); ?>\n', types: ['php'] },
};

const PLAIN = [
  'Dear operator,\nthis is plain text.\n',
  'a,b\n1,<2\n',
  'onion=3 and turn on = off; javascript: a language; see <b>bold</b> and <a href="x">a link</a>\n',
  'x <svgfoo> <scripts> <htmlx\n',
  '#not a shebang\n#!/bin/sh on the second line is only a comment\n',
  'say @echo off in the middle of a line\n',
  'my [Desktop Entry] notes\n',
  '',
];

describe('ActiveScanner', () => {
  for (const [name, { text, types }] of Object.entries(SAMPLES)) {
    it(`${name}: finds ${types.join(', ')}, whatever the chunk boundaries`, () => {
      expect(typesIn(text)).toEqual(types);
      for (const step of [1, 2, 3, 5, 7, 13]) expect(typesIn(text, step), `step ${step}`).toEqual(types);
    });
  }

  it('finds nothing in plain text, prose about markup, or markers out of place', () => {
    for (const text of PLAIN) {
      expect(typesIn(text), JSON.stringify(text)).toEqual([]);
      expect(typesIn(text, 1), JSON.stringify(text)).toEqual([]);
    }
  });

  it('finds a marker deep in a large text, across a chunk boundary', () => {
    const filler = 'lorem ipsum dolor sit amet\n'.repeat(40_000);
    const text = `${filler}<scr` + `ipt>x</script>\n${filler}`;
    expect(typesIn(text, 256 * 1024)).toEqual(['javascript']);
  });

  it('says how each type was found, with the marker quoted', () => {
    const a = new ActiveScanner();
    a.push('#!/bin/bash -e\n<svg onload="x">');
    expect(settleActive(a.end())).toEqual([
      { type: 'shell', how: 'content: #! line "#!/bin/bash -e"' },
      { type: 'svg', how: 'content: "<svg"' },
      { type: 'javascript', how: 'content: "onload="' },
    ]);
  });
});

describe('active types by name', () => {
  it('maps extensions to types', () => {
    const cases: [string, string | undefined][] = [
      ['sh', 'shell'], ['command', 'shell'], ['bat', 'batch'], ['cmd', 'batch'], ['ps1', 'powershell'], ['psm1', 'powershell'],
      ['vbs', 'vbscript'], ['vbe', 'vbscript'], ['js', 'javascript'], ['wsf', 'wsh'], ['hta', 'hta'], ['desktop', 'desktop'],
      ['py', 'python'], ['php', 'php'], ['html', 'html'], ['htm', 'html'], ['mhtml', 'html'], ['svg', 'svg'], ['xml', 'xml'],
      ['reg', 'reg'], ['ps', 'ps'], ['txt', undefined], ['csv', undefined], ['json', undefined], ['', undefined],
    ];
    for (const [ext, type] of cases) expect(activeTypeOfExtension(ext), ext).toBe(type);
  });

  it('every active id can be allowed in transit.allowTypes (a known content id, a valid config string)', () => {
    for (const t of ACTIVE_TYPES) {
      expect(KNOWN_CONTENT_IDS.has(t.id), t.id).toBe(true);
      expect(t.id).toMatch(/^[a-z0-9]{1,16}$/);
    }
    expect(() => fileTypeCheck({ allow: [...ACTIVE_IDS] })).not.toThrow();
    expect(() => fileTypeCheck({ allow: ['sh'] })).toThrow(`unknown content type "sh" (did you mean 'shell'?)`);
  });
});

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-active-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** check - run the file-type check with `allow` on a file named `name` holding `text`. */
async function check(allow: string[], name: string, text: string) {
  const bytes = Buffer.from(text);
  const path = join(dir, `f${++n}`);
  writeFileSync(path, bytes);
  const fd = openSync(path, 'r');
  try {
    const input = { fd, size: bytes.length, sha256hex: createHash('sha256').update(bytes).digest('hex'), name };
    return await fileTypeCheck({ allow }).run(input, new AbortController().signal);
  } finally {
    closeSync(fd);
  }
}

const DEFAULT = ['png', 'jpg', 'gif', 'webp', 'pdf', 'txt', 'csv', 'json'];

describe('fileTypeCheck and scripts or markup', () => {
  it('refuses each by default, by content under a .txt name and by name with plain content, saying which and how', async () => {
    expect(await check(DEFAULT, 'notes.txt', '#!/bin/sh\nrm -rf ~\n')).toEqual(
      expect.objectContaining({ outcome: 'fail', reason: 'script or markup not allowed: shell (content: #! line "#!/bin/sh")' }),
    );
    expect(await check(DEFAULT, 'run.bat', 'echo hi\r\n')).toEqual(expect.objectContaining({ outcome: 'fail', reason: 'script or markup not allowed: batch (extension .bat)' }));
    expect(await check(DEFAULT, 'page.txt', '<!doctype html><p>x</p>\n')).toEqual(
      expect.objectContaining({ outcome: 'fail', reason: 'script or markup not allowed: html (content: "<!doctype html")' }),
    );
    expect(await check(DEFAULT, 'pic.svg', SAMPLES.svgScript!.text)).toEqual(
      expect.objectContaining({ outcome: 'fail', reason: 'script or markup not allowed: svg (content: "<svg"; extension .svg), javascript (content: "<script")' }),
    );
    // An empty file under a script's name is still that script type.
    expect((await check(DEFAULT, 'x.ps1', '')).outcome).toBe('fail');
  });

  it('passes plain text, CSV and JSON as before', async () => {
    expect(await check(DEFAULT, 'a.txt', 'hello\n')).toEqual(expect.objectContaining({ outcome: 'pass', reason: 'content type txt is allowed (plain text)' }));
    expect((await check(DEFAULT, 'a.csv', 'a,b\n1,2\n')).outcome).toBe('pass');
    expect((await check(DEFAULT, 'a.json', '{"a": [1, 2]}')).outcome).toBe('pass');
  });

  it('passes a type the operator allows by name, and only that type', async () => {
    expect(await check([...DEFAULT, 'shell'], 'a.sh', '#!/bin/sh\necho hi\n')).toEqual(
      expect.objectContaining({ outcome: 'pass', reason: 'content type shell is allowed (text); allowed by name: shell' }),
    );
    expect((await check(['shell'], 'a.sh', 'echo hi\n')).outcome).toBe('pass'); // the name makes it shell; shell is allowed
    expect((await check([...DEFAULT, 'svg'], 'a.svg', SAMPLES.svgStatic!.text)).outcome).toBe('pass');
    // Allowing svg admits images, not programs: script inside needs javascript too.
    expect(await check([...DEFAULT, 'svg'], 'a.svg', SAMPLES.svgOnload!.text)).toEqual(
      expect.objectContaining({ outcome: 'fail', reason: 'script or markup not allowed: javascript (content: "onload=")' }),
    );
    expect((await check([...DEFAULT, 'svg', 'javascript'], 'a.svg', SAMPLES.svgOnload!.text)).outcome).toBe('pass');
    // A batch file under a .sh name is both.
    expect(await check([...DEFAULT, 'shell'], 'a.sh', '@echo off\n')).toEqual(
      expect.objectContaining({ outcome: 'fail', reason: 'script or markup not allowed: batch (content: "@echo off")' }),
    );
  });
});

describe('detectContent and scripts or markup', () => {
  it('lists active types first, keeps txt, and turns xml, ps and reg signatures into active types', async () => {
    const detect = async (text: string) => {
      const path = join(dir, `d${++n}`);
      writeFileSync(path, text);
      const fd = openSync(path, 'r');
      try {
        return await detectContentOf(fd, Buffer.byteLength(text), new AbortController().signal);
      } finally {
        closeSync(fd);
      }
    };
    expect(await detect('#!/bin/sh\n')).toMatchObject({ type: 'shell', ids: ['shell', 'txt'] });
    expect(await detect('{"a": "<script>"}')).toMatchObject({ type: 'javascript', ids: ['javascript', 'json', 'txt'] });
    expect(await detect('<?xml version="1.0"?><a/>')).toMatchObject({ type: 'xml', ids: ['xml', 'txt'], active: [{ type: 'xml', how: 'content: xml signature', weak: true }] });
    expect(await detect('<?xml version="1.0"?><svg/>')).toMatchObject({ type: 'xml', ids: ['xml', 'svg', 'txt'], active: [{ type: 'svg' }] });
    expect(await detect('%!PS-Adobe-3.0\n')).toMatchObject({ type: 'ps', active: [{ type: 'ps', how: 'content: ps signature' }] });
    expect(await detect('plain\n')).toMatchObject({ type: 'txt', ids: ['txt'], active: [] });
  });

  it('TextScanner reports what it found', () => {
    const t = new TextScanner();
    t.push(Buffer.from('[Desktop Entry]\nExec=id\n'));
    expect(t.end()).toMatchObject({ text: true, kind: 'txt', detail: 'text', active: [{ type: 'desktop' }] });
  });
});
