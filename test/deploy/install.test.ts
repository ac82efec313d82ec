/*
 * NAME
 *   install.test - `make install DESTDIR=...`
 *
 * DESCRIPTION
 *   `make install` lays out a working, self-contained tree (offline: it
 *   copies what `make build` made): the application with its production
 *   dependencies only, the units naming the installed tree, sysusers.d,
 *   tmpfiles.d, the sshd drop-ins and the configuration; PREFIX is honoured,
 *   an edited configuration survives a reinstall.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UNITS, hasAnalyze, installOnce, removeInstall, root, skipReason } from './support.js';

afterAll(removeInstall);

describe('make install', () => {
  it('lays out the application, units, users, directories and configuration under DESTDIR', () => {
    const d = installOnce();
    const lib = path.join(d, 'usr/local/lib/sluice');
    for (const f of [
      'usr/local/bin/sluice',
      'usr/local/lib/sysusers.d/sluice.conf',
      'usr/local/lib/tmpfiles.d/sluice.conf',
      'usr/local/share/sluice/sluice.json',
      'usr/local/share/doc/sluice/privsep.md',
      'etc/sluice/sluice.json',
      'etc/ssh/sshd_config.d/sluice-drop.conf',
      'etc/ssh/sshd_config.d/sluice-uploaders.conf',
      'usr/local/share/sluice/sluice-uploaders.conf',
      ...UNITS.map((u) => `usr/local/lib/systemd/system/${u}`),
    ]) {
      expect(fs.existsSync(path.join(d, f)), f).toBe(true);
    }
    expect(fs.readdirSync(path.join(lib, 'packages/native/build/Release'))).toEqual(['sluice_native.node']);
    expect(fs.existsSync(path.join(lib, 'node_modules/pqclean/wasm/gen/pqclean.wasm'))).toBe(true);
    // Production dependencies only.
    expect(fs.existsSync(path.join(lib, 'node_modules/pino'))).toBe(true);
    for (const dev of ['vitest', 'typescript', 'fast-check', 'node-gyp']) expect(fs.existsSync(path.join(lib, 'node_modules', dev)), dev).toBe(false);
    // The units name the installed tree.
    const unit = fs.readFileSync(path.join(d, 'usr/local/lib/systemd/system/sluice-egress.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\/usr\/\S*node \/usr\/local\/lib\/sluice\/packages\/egress\/dist\/main\.js --config /m);
  });

  it('the installed command runs from the installed tree alone', () => {
    const d = installOnce();
    const r = spawnSync(path.join(d, 'usr/local/bin/sluice'), ['config', 'check', path.join(d, 'etc/sluice/sluice.json')], { encoding: 'utf8' });
    expect(r.stdout + r.stderr).toContain(': ok');
    expect(r.status).toBe(0);
  });

  it.skipIf(!hasAnalyze)(`the installed units pass systemd-analyze verify${skipReason(!hasAnalyze, 'no systemd-analyze')}`, () => {
    const d = installOnce();
    const units = UNITS.map((u) => path.join(d, 'usr/local/lib/systemd/system', u));
    const r = spawnSync('systemd-analyze', ['verify', ...units], { encoding: 'utf8', cwd: os.tmpdir() });
    expect(r.stderr.split('\n').filter((l) => l.includes('sluice')), r.stderr).toEqual([]);
    expect(r.status).toBe(0);
  });

  it('honours PREFIX in the units, keeps an edited /etc/sluice/sluice.json on reinstall, refuses a PREFIX outside /usr', () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-install-prefix-'));
    try {
      const make = (...args: string[]) => spawnSync('make', ['-s', 'install', `DESTDIR=${d}`, ...args], { cwd: root, encoding: 'utf8' });
      expect(make('PREFIX=/usr/lib/sluice-alt').status).toBe(0);
      const unit = fs.readFileSync(path.join(d, 'usr/lib/sluice-alt/lib/systemd/system/sluice-ingress.service'), 'utf8');
      expect(unit).toContain('ExecStart=');
      expect(unit).toContain(' /usr/lib/sluice-alt/lib/sluice/packages/ingress/dist/main.js ');
      expect(unit).toMatch(/^BindReadOnlyPaths=.* \/usr\/lib\/sluice-alt\/lib\/sluice /m);
      expect(unit).not.toContain('/usr/local/');
      const conf = path.join(d, 'etc/sluice/sluice.json');
      fs.writeFileSync(conf, '{"station":"edited"}\n');
      expect(make('PREFIX=/usr/lib/sluice-alt').status).toBe(0);
      expect(fs.readFileSync(conf, 'utf8')).toBe('{"station":"edited"}\n');
      const bad = make('PREFIX=/opt/sluice');
      expect(bad.status).not.toBe(0);
      expect(bad.stderr).toContain('must be /usr or below');
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });
});
