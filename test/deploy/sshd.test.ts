/*
 * NAME
 *   sshd.test - the sshd drop-ins for the drop account and the named
 *   uploaders (deploy/sshd_config.d/sluice-drop.conf, sluice-uploaders.conf)
 *
 * DESCRIPTION
 *   The drop account is chrooted into the inbox tree, gets internal-sftp
 *   only, and every request the distribution's sftp-server knows is either
 *   allowed (what writing a new file and renaming it needs) or refused.
 *   The named uploaders get the same, each in a chroot of its own, plus
 *   what reading its results needs. test/deploy/topology.test.ts and
 *   nspawn.test.ts run the drop account under a real sshd,
 *   test/deploy/uploaders.test.ts the named uploaders.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseConfigText } from '@sluice/core';
import { deploy, skipReason } from './support.js';

/** dropIn - a drop-in's text, its ForceCommand, and the requests that command allows (-p) and refuses (-P). */
function dropIn(file = 'sluice-drop.conf') {
  const text = fs.readFileSync(path.join(deploy, 'sshd_config.d', file), 'utf8');
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

describe('deploy/sshd_config.d/sluice-uploaders.conf', () => {
  /** settings - the block's "Keyword value" lines, keyed by keyword (the Match lines left out). */
  const settings = (text: string) =>
    new Map(
      text
        .split('\n')
        .filter((l) => /^\t\S/.test(l))
        .map((l) => l.trim().split(/\s+(.*)/s).slice(0, 2) as [string, string]),
    );

  it('one Match Group block chroots every uploader to its own directory, with its own key file, and closes itself', () => {
    const { text, force } = dropIn('sluice-uploaders.conf');
    expect(text.match(/^Match /gm)).toEqual(['Match ', 'Match ']);
    expect(text).toMatch(/^Match Group sluice-uploaders$/m);
    expect(text.trimEnd()).toMatch(/\nMatch all$/);
    const s = settings(text);
    expect(s.get('ChrootDirectory')).toBe('/var/lib/sluice/uploaders/%u');
    expect(s.get('AuthorizedKeysFile')).toBe('/etc/sluice/uploaders/keys/%u');
    // Uploads start in the chroot's inbox, and lose every bit but the owner's write bit.
    expect(force).toMatch(/^internal-sftp -d \/inbox -u 0477 /);
  });

  it("keeps every restriction of the drop account's block: only the chroot, the key file and the request lists differ", () => {
    const drop = settings(dropIn('sluice-drop.conf').text);
    const upl = settings(dropIn('sluice-uploaders.conf').text);
    const differ = ['ChrootDirectory', 'AuthorizedKeysFile', 'ForceCommand'];
    expect([...upl.keys()].sort()).toEqual([...drop.keys()].sort());
    for (const [k, v] of drop) if (!differ.includes(k)) expect(upl.get(k), k).toBe(v);
    for (const k of ['DisableForwarding', 'AuthenticationMethods', 'PermitTTY', 'PasswordAuthentication']) expect(upl.has(k), k).toBe(true);
  });

  const sftpServer = '/usr/lib/openssh/sftp-server';
  it.skipIf(!fs.existsSync(sftpServer))(`the drop-in decides every request sftp-server knows: the drop account's, plus reading and listing${skipReason(!fs.existsSync(sftpServer), 'no /usr/lib/openssh/sftp-server (Debian openssh-sftp-server)')}`, () => {
    const { denied, allowed } = dropIn('sluice-uploaders.conf');
    const drop = dropIn('sluice-drop.conf');
    const known = spawnSync(sftpServer, ['-Q', 'requests'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    expect(known.filter((r) => !allowed.includes(r) && !denied.includes(r))).toEqual([]);
    expect([...allowed, ...denied].filter((r) => !known.includes(r))).toEqual([]);
    expect(allowed.filter((r) => denied.includes(r))).toEqual([]);
    expect(allowed.filter((r) => !drop.allowed.includes(r)).sort()).toEqual(['opendir', 'read', 'readdir']);
    expect(drop.allowed.filter((r) => !allowed.includes(r))).toEqual([]);
    for (const req of ['setstat', 'fsetstat', 'lsetstat', 'symlink', 'hardlink', 'readlink', 'remove', 'mkdir', 'rmdir', 'copy-data', 'users-groups-by-id']) expect(denied).toContain(req);
  });
});
