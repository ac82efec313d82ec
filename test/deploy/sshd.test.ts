/*
 * NAME
 *   sshd.test - the sshd drop-in for the drop account
 *   (deploy/sshd_config.d/sluice-drop.conf)
 *
 * DESCRIPTION
 *   The drop account is chrooted into the inbox tree, gets internal-sftp
 *   only, and every request the distribution's sftp-server knows is either
 *   allowed (what writing a new file and renaming it needs) or refused.
 *   test/deploy/topology.test.ts and nspawn.test.ts run it under a real sshd.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseConfigText } from '@sluice/core';
import { deploy, skipReason } from './support.js';

/** dropIn - the drop-in's text, its ForceCommand, and the requests that command allows (-p) and refuses (-P). */
function dropIn() {
  const text = fs.readFileSync(path.join(deploy, 'sshd_config.d/sluice-drop.conf'), 'utf8');
  const force = /^\s*ForceCommand (.*)$/m.exec(text)![1]!;
  const denied = /-P (\S+)/.exec(force)![1]!.split(',');
  const allowed = /-p (\S+)/.exec(force)![1]!.split(',');
  return { text, force, denied, allowed };
}

describe('deploy/sshd_config.d/sluice-drop.conf', () => {
  const cfg = parseConfigText(fs.readFileSync(path.join(deploy, 'sluice.json'), 'utf8'), 'deploy/sluice.json');

  it('the sshd drop-in chroots the drop account into the inbox tree and refuses what an uploader must not do', () => {
    const { text, force, denied, allowed } = dropIn();
    const chroot = /^\s*ChrootDirectory (\S+)$/m.exec(text)![1]!;
    expect(path.dirname(cfg.ingress.inbox)).toBe(chroot);
    expect(text).toMatch(/^Match User sluice-drop$/m);
    expect(text.trimEnd()).toMatch(/\nMatch all$/);
    expect(force).toMatch(new RegExp(`^internal-sftp -d /${path.basename(cfg.ingress.inbox)} -u 0027 `));
    for (const req of ['setstat', 'fsetstat', 'lsetstat', 'symlink', 'hardlink', 'remove', 'mkdir', 'rmdir', 'read', 'copy-data']) {
      expect(denied).toContain(req);
      expect(allowed).not.toContain(req);
    }
    expect(text).toMatch(/^\s*ClientAliveInterval [1-9]/m);
  });

  // "and whatever else an uploader must not do": every request this sftp-server knows is
  // decided, allowed (-p) or refused (-P); a request a newer OpenSSH adds shows up here.
  const sftpServer = '/usr/lib/openssh/sftp-server';
  it.skipIf(!fs.existsSync(sftpServer))(`the drop-in decides every request sftp-server knows${skipReason(!fs.existsSync(sftpServer), 'no /usr/lib/openssh/sftp-server (Debian openssh-sftp-server)')}`, () => {
    const { denied, allowed } = dropIn();
    const known = spawnSync(sftpServer, ['-Q', 'requests'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    expect(known.length).toBeGreaterThan(20);
    expect(known.filter((r) => !allowed.includes(r) && !denied.includes(r))).toEqual([]);
    expect([...allowed, ...denied].filter((r) => !known.includes(r))).toEqual([]); // no typo: an unknown name would be ignored
    expect(allowed.filter((r) => denied.includes(r))).toEqual([]);
    // Only what writing a new file and renaming it needs, plus the harmless lookups scp and sftp make first.
    expect(allowed.sort()).toEqual(['close', 'expand-path', 'fstat', 'fsync', 'home-directory', 'limits', 'lstat', 'open', 'posix-rename', 'realpath', 'rename', 'stat', 'write']);
  });
});
