// harness - what the native tests share: temp dirs, children, fd accounting.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { native, waitFor } from './addon.mjs';

export { waitFor };

export const HELPERS = path.dirname(fileURLToPath(import.meta.url));
export const PYTHON = '/usr/bin/python3';
export const NOBODY = 65534;
// Children under another uid make peerCred and the memfd reopen meaningful;
// without root they run as ourselves.
export const CAN_SWITCH_UID = process.getuid() === 0 && fs.existsSync('/usr/bin/setpriv');

// tempDir - a fresh world-traversable directory (a child under uid 65534 must reach it).
export function tempDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-native-'));
  fs.chmodSync(dir, 0o755);
  return dir;
}

// openFds - the descriptor numbers this process holds right now.
export function openFds() {
  return fs.readdirSync('/proc/self/fd').map(Number).sort((a, b) => a - b);
}

// child - spawn a helper; `done` resolves with exit code, signal and output.
export function child(argv, { asUser = false, stdin = 'ignore' } = {}) {
  let [cmd, ...args] = argv;
  if (asUser && CAN_SWITCH_UID) {
    args = [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', cmd, ...args];
    cmd = 'setpriv';
  }
  const proc = spawn(cmd, args, { stdio: [stdin, 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (s) => (stdout += s));
  proc.stderr.setEncoding('utf8').on('data', (s) => (stderr += s));
  const done = new Promise((resolve) =>
    proc.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  const line = () =>
    new Promise((resolve, reject) => {
      const check = () => {
        const i = stdout.indexOf('\n');
        if (i >= 0) resolve(stdout.slice(0, i));
        else if (proc.exitCode !== null) reject(new Error(`child exited: ${stderr}`));
        else setTimeout(check, 10);
      };
      check();
    });
  return { proc, done, line };
}

// node - spawn one of the .mjs helpers.
export function nodeHelper(script, args, opts) {
  return child([process.execPath, path.join(HELPERS, script), ...args], opts);
}

// lastJson - the last JSON line a helper printed.
export function lastJson(stdout) {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

// acceptOne - wait for and accept one connection. With PEER (a child()),
// fail as soon as it exits without having connected, instead of hanging.
export function acceptOne(lfd, peer) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (fd, why) => {
      if (settled || (fd < 0 && !why)) return;
      settled = true;
      poller.close();
      if (fd >= 0) resolve(fd);
      else reject(new Error(`peer exited before connecting: ${why}`));
    };
    const poller = native.poll(lfd, () => finish(native.accept(lfd)));
    poller.start(native.constants.POLL_READABLE);
    peer?.done.then((res) => settled || finish(native.accept(lfd), JSON.stringify(res)));
  });
}
