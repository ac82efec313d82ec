/*
 * NAME
 *   units.test - the unit files, sysusers.d, tmpfiles.d and configuration in
 *   deploy/, checked by systemd-analyze and against docs/privsep.md
 *
 * DESCRIPTION
 *   Every unit passes `systemd-analyze verify`; every service scores at
 *   most 1.0 with `systemd-analyze security --offline=true`. docs/privsep.md
 *   is the privilege table; the units, socket units, sysusers.d, tmpfiles.d
 *   and the example configuration must agree with it, cell by cell
 *   (style.md, example 7). docs/operations.md names only events that
 *   docs/logging.md documents.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfigText } from '@sluice/core';
import { SERVICES, UNITS, deploy, hasAnalyze, list, mdTable, one, readUnit, root, skipReason, sysusers, tmpfilesLines, words } from './support.js';

// ---------------------------------------------------------------- systemd-analyze

const analyzeWhy = skipReason(!hasAnalyze, 'systemd-analyze is not installed (Debian package systemd)');

describe(`systemd-analyze${analyzeWhy}`, () => {
  it.skipIf(!hasAnalyze).each(UNITS)(`%s passes systemd-analyze verify${analyzeWhy}`, (name) => {
    const r = spawnSync('systemd-analyze', ['verify', path.join(deploy, name)], { encoding: 'utf8', cwd: os.tmpdir() });
    // verify also loads units the system has; only complaints about ours count.
    expect(r.stderr.split('\n').filter((l) => l.includes('sluice')), r.stderr).toEqual([]);
    expect(r.status).toBe(0);
  });

  // `security` scores what a unit's processes may do; sockets and the target run no process
  // (the tool would score them as if they were unhardened root services).
  it.skipIf(!hasAnalyze).each(SERVICES)(`%s: exposure at most 1.0 (security --offline=true --threshold=10)${analyzeWhy}`, (name) => {
    const r = spawnSync('systemd-analyze', ['security', '--offline=true', '--threshold=10', '--no-pager', path.join(deploy, name)], {
      encoding: 'utf8',
      cwd: os.tmpdir(),
    });
    const m = /Overall exposure level for \S+: (\d+\.\d)/.exec(r.stdout);
    expect(m, r.stdout + r.stderr).not.toBeNull();
    expect(Number(m![1])).toBeLessThanOrEqual(1.0);
    expect(r.status, r.stdout).toBe(0);
  });
});

// ---------------------------------------------------------------- docs/privsep.md

describe('deploy/ agrees with docs/privsep.md', () => {
  const doc = path.join(root, 'docs/privsep.md');
  const processes = mdTable(doc, 'Processes');
  const sockets = mdTable(doc, 'Sockets');
  const paths = mdTable(doc, 'Paths');
  const users = sysusers(fs.readFileSync(path.join(deploy, 'sysusers.d/sluice.conf'), 'utf8'));
  const tmpfiles = tmpfilesLines(fs.readFileSync(path.join(deploy, 'tmpfiles.d/sluice.conf'), 'utf8'));
  const cfg = parseConfigText(fs.readFileSync(path.join(deploy, 'sluice.json'), 'utf8'), 'deploy/sluice.json');

  it('every service has a row and every row a service', () => {
    const onDisk = fs.readdirSync(deploy).filter((f) => f.endsWith('.service')).sort();
    expect(processes.map((r) => r.unit).sort()).toEqual(onDisk);
    expect(onDisk).toEqual([...SERVICES].sort());
  });

  it.each(processes.map((r) => [r.process!, r] as const))('%s: user, groups, capabilities, network, program', (proc, row) => {
    const u = readUnit(row.unit!);
    expect(one(u, 'Service', 'User')).toBe(row.user);
    expect(one(u, 'Service', 'Group')).toBe(row.user); // the user's own group, as sysusers makes it
    expect(users.users.has(row.user!)).toBe(true);
    expect(words(u, 'Service', 'SupplementaryGroups').sort()).toEqual(list(row['supplementary groups']!));
    for (const g of list(row['supplementary groups']!)) expect(users.members.get(g)?.has(row.user!)).toBe(true);
    const caps = list(row.capabilities!);
    expect(words(u, 'Service', 'CapabilityBoundingSet').sort()).toEqual(caps);
    expect(words(u, 'Service', 'AmbientCapabilities').sort()).toEqual(caps);
    expect(row.network).toBe('none');
    expect(one(u, 'Service', 'PrivateNetwork')).toBe('yes');
    expect(words(u, 'Service', 'RestrictAddressFamilies')).toEqual(['AF_UNIX']);
    expect(one(u, 'Service', 'ExecStart')).toMatch(new RegExp(`/packages/${proc}/dist/main\\.js --config /etc/sluice/sluice\\.json$`));
    expect(one(u, 'Service', 'Type')).toBe('notify');
    expect(one(u, 'Service', 'NoNewPrivileges')).toBe('yes');
  });

  it.each(processes.map((r) => [r.process!, r] as const))('%s writes exactly the paths the table says', (proc, row) => {
    const u = readUnit(row.unit!);
    const writable = [...words(u, 'Service', 'BindPaths'), ...words(u, 'Service', 'ReadWritePaths')].sort();
    const documented = paths.filter((p) => list(p['written by']!).includes(proc)).map((p) => p.path!).sort();
    expect(writable).toEqual(documented);
    // Everything else read-only: the OS tree (strict), or for ingress an empty read-only root (see below).
    if (proc === 'ingress') expect(words(u, 'Service', 'TemporaryFileSystem')).toContain('/:ro');
    else expect(one(u, 'Service', 'ProtectSystem')).toBe('strict');
  });

  it('ingress sees an allow-list: an empty read-only root, and bound into it exactly the paths "What ingress sees" lists', () => {
    const u = readUnit('sluice-ingress.service');
    const seen = mdTable(doc, 'What ingress sees');
    const bare = (ws: string[]) => ws.map((w) => w.replace(/^-/, '')).sort();
    const rows = (access: string) => seen.filter((r) => r.access === access).map((r) => r.path!).sort();
    expect(words(u, 'Service', 'TemporaryFileSystem').sort()).toEqual(rows('empty').map((p) => `${p}:ro`));
    expect(rows('empty')).toContain('/');
    expect(bare(words(u, 'Service', 'BindReadOnlyPaths'))).toEqual(rows('read-only'));
    expect(bare(words(u, 'Service', 'BindPaths'))).toEqual(rows('read-write'));
    expect(seen.filter((r) => !['empty', 'read-only', 'read-write'].includes(r.access!))).toEqual([]);
    // No deny-list left to keep up to date, and nothing read-only remounts the empty root away.
    expect(u.Service!.InaccessiblePaths).toBeUndefined();
    expect(one(u, 'Service', 'ProtectSystem')).toBe('yes');
  });

  it.each(sockets.map((r) => [r.socket!, r] as const))('%s: socket unit, owner, group, mode, peers', (sock, row) => {
    const u = readUnit(row.unit!);
    expect(one(u, 'Socket', 'ListenSequentialPacket')).toBe(sock);
    expect(one(u, 'Socket', 'SocketUser')).toBe(row.owner);
    expect(one(u, 'Socket', 'SocketGroup')).toBe(row.group);
    expect(one(u, 'Socket', 'SocketMode')).toBe(row.mode);
    // The socket unit activates the service of the same name, which must require it.
    expect(row['served by']).toBe(row.unit!.replace(/\.socket$/, '.service'));
    expect(words(readUnit(row['served by']!), 'Unit', 'Requires')).toContain(row.unit);
    // Only the allowed peer (whose primary group is the socket's group) may connect; the stage checks the uid too.
    expect(row.group).toBe(row['allowed peer']);
    const served = processes.find((p) => p.unit === row['served by'])!;
    expect(row.owner).toBe(served.user);
    const section = served.process === 'transit' ? cfg.transit : cfg.egress;
    expect(section.socket).toBe(sock);
    expect(section.allowUsers).toEqual([row['allowed peer']]);
    // ... and the connecting side expects this socket to be served by its owner.
    if (served.process === 'transit') {
      expect(cfg.ingress.transitSocket).toBe(sock);
      expect(cfg.ingress.transitUser).toBe(served.user);
    } else {
      expect(cfg.transit.egressSocket).toBe(sock);
      expect(cfg.transit.egressUser).toBe(served.user);
    }
  });

  it('every directory in tmpfiles.d has a row with its owner, group and mode, and vice versa', () => {
    const dirs = tmpfiles.filter((l) => l.type === 'd');
    expect(dirs.map((d) => d.path).sort()).toEqual(paths.map((p) => p.path).sort());
    for (const d of dirs) {
      const row = paths.find((p) => p.path === d.path)!;
      expect([d.user, d.group, d.mode], d.path).toEqual([row.owner, row.group, row.mode]);
    }
    // Each directory the configuration names is one of them.
    for (const p of [cfg.ingress.inbox, cfg.ingress.spool, cfg.transit.state, cfg.egress.outbox, cfg.egress.rejected, cfg.egress.state, cfg.egress.log]) {
      expect(dirs.map((d) => d.path)).toContain(p);
    }
  });

  it("the transparency log's files exist for the consumers' group before egress creates them (never truncated)", () => {
    // egress.log is also the built-in default, so a configuration without the key puts it in the same place.
    expect(cfg.egress.log).toBe(parseConfigText('{}', 'empty').egress.log);
    const files = tmpfiles.filter((l) => l.type.startsWith('f'));
    expect(files.map((f) => [f.type, f.path, f.user, f.group, f.mode])).toEqual(
      ['leaves', 'heads'].map((n) => ['f', `${cfg.egress.log}/${n}`, 'sluice-egress', 'sluice-out', '0640']),
    );
    expect(tmpfiles.find((l) => l.type === 'd' && l.path === cfg.egress.log)).toMatchObject({ user: 'sluice-egress', group: 'sluice-out', mode: '0750' });
  });

  it("transit.memoryMaxBytes is the transit unit's MemoryMax=, and the budget fits in it (docs/capacity.md)", () => {
    const m = /^(\d+)([KMG]?)$/.exec(one(readUnit('sluice-transit.service'), 'Service', 'MemoryMax'));
    expect(m).not.toBeNull();
    const unit = Number(m![1]) * 1024 ** ' KMG'.indexOf(m![2] || ' ');
    expect(cfg.transit.memoryMaxBytes).toBe(unit);
    expect(cfg.limits.maxFileBytes).toBeLessThanOrEqual(Math.max(cfg.transit.copyDiskBytes, cfg.transit.copyMemoryBytes));
  });

  it("egress.memoryMaxBytes is the egress unit's MemoryMax= (docs/capacity.md)", () => {
    const m = /^(\d+)([KMG]?)$/.exec(one(readUnit('sluice-egress.service'), 'Service', 'MemoryMax'));
    expect(m).not.toBeNull();
    expect(cfg.egress.memoryMaxBytes).toBe(Number(m![1]) * 1024 ** ' KMG'.indexOf(m![2] || ' '));
  });

  it('the users and groups the tables name are the ones sysusers.d creates', () => {
    const named = new Set<string>();
    for (const r of processes) [r.user!, ...list(r['supplementary groups']!)].forEach((n) => named.add(n));
    for (const r of sockets) [r.owner!, r.group!, r['allowed peer']!].forEach((n) => named.add(n));
    for (const r of paths) [r.owner!, r.group!].filter((n) => n !== 'root').forEach((n) => named.add(n));
    const created = new Set([...users.users, ...users.groups]);
    expect([...named].filter((n) => !created.has(n))).toEqual([]);
    expect([...users.users].sort()).toEqual(['sluice-drop', 'sluice-egress', 'sluice-ingress', 'sluice-transit']);
    expect([...(users.members.get('sluice-inbox') ?? [])].sort()).toEqual(['sluice-drop', 'sluice-ingress']);
  });

  it('the signing key reaches egress only through LoadCredential, at the path the configuration names', () => {
    const u = readUnit('sluice-egress.service');
    const [name, source] = one(u, 'Service', 'LoadCredential').split(':');
    expect(source).toBe('/etc/sluice/keys/signing.key');
    expect(cfg.egress.signingKey).toBe(`/run/credentials/sluice-egress.service/${name}`);
    expect(words(u, 'Service', 'InaccessiblePaths')).toContain('-/etc/sluice/keys');
    // Nobody else gets a credential, and the key directory is root's 0700.
    for (const s of ['sluice-ingress.service', 'sluice-transit.service']) expect(readUnit(s).Service!.LoadCredential).toBeUndefined();
    expect(tmpfiles.find((l) => l.path === '/etc/sluice/keys')).toMatchObject({ user: 'root', group: 'root', mode: '0700' });
  });

  it('no stage leaves a core file (LimitCORE=0: its memory holds uploads, and egress\'s the signing key), and docs/privsep.md says so', () => {
    for (const s of SERVICES) expect(one(readUnit(s), 'Service', 'LimitCORE'), s).toBe('0');
    const doc = fs.readFileSync(path.join(root, 'docs/privsep.md'), 'utf8');
    expect(doc).toContain('`LimitCORE=0`');
    expect(doc).toMatch(/PR_SET_DUMPABLE/);
  });

  it('every capability a unit keeps is justified in docs/privsep.md; MemoryDenyWriteExecute= is off in every unit, and the reason is written down', () => {
    const doc = fs.readFileSync(path.join(root, 'docs/privsep.md'), 'utf8');
    for (const row of processes) {
      for (const cap of list(row.capabilities!)) expect(doc, cap).toMatch(new RegExp(`^- \\*\\*\`${cap}\`\\.\\*\\* \\S`, 'm'));
    }
    for (const s of SERVICES) {
      const u = readUnit(s);
      expect(u.Service!.MemoryDenyWriteExecute, s).toBeUndefined();
      expect(u.Service!.PrivateUsers, s).toBeUndefined();
    }
    expect(doc).toMatch(/\*\*`MemoryDenyWriteExecute=`\*\*: V8 .*machine code/s);
  });
});

describe('docs/operations.md', () => {
  it('covers install, first start, uploader keys, the log fields to watch, key rotation and upgrading; every event it names is in docs/logging.md', () => {
    const ops = fs.readFileSync(path.join(root, 'docs/operations.md'), 'utf8');
    const logging = fs.readFileSync(path.join(root, 'docs/logging.md'), 'utf8');
    const headings = [...ops.matchAll(/^## (.+)$/gm)].map((m) => m[1]);
    for (const h of ['Install', 'First start', "Adding an uploader's key", 'What to watch', 'Rotating the signing key', 'Upgrading']) expect(headings).toContain(h);
    const watch = mdTable(path.join(root, 'docs/operations.md'), 'What to watch');
    const events = watch.flatMap((r) => [...r.event!.matchAll(/([a-z]+(?:-[a-z]+)+|\b(?:held|retry)\b)/g)].map((m) => m[1]!));
    expect(events.length).toBeGreaterThan(10);
    expect(events.filter((e) => !logging.includes(`\`${e}\``))).toEqual([]);
    for (const field of ['event', 'level', 'stage', 'id', 'reason', 'peer']) expect(ops).toContain(`\`${field}\``);
  });
});
