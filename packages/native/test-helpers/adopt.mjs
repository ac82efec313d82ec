// adopt - adopt an inherited listening socket on fd 3, the way a unit started
// by a systemd socket unit would (LISTEN_FDS); report its flags before and after.
//   /usr/bin/python3 -c '...bind, listen, dup2 to 3, exec...' node adopt.mjs
import fs from 'node:fs';
import { native, print } from './addon.mjs';

// fdinfoFlags - the octal "flags:" line of /proc/self/fdinfo/N (shows O_CLOEXEC too).
const fdinfoFlags = (fd) =>
  parseInt(/^flags:\s+([0-7]+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))[1], 8);

const before = fdinfoFlags(3);
const info = native.socketInfo(3);
native.setNonblockCloexec(3);
const after = fdinfoFlags(3);
native.setNonblockCloexec(3); // idempotent
print({ before, after, again: fdinfoFlags(3), info, accept: native.accept(3) });
