// listen-umask - listen(PATH, MODE) under process umask UMASK; report the file's mode.
//   node listen-umask.mjs PATH UMASK MODE      (octal UMASK and MODE)
import fs from 'node:fs';
import { native, print } from './addon.mjs';

const [path, umask, mode] = process.argv.slice(2);
process.umask(parseInt(umask, 8));
const fd = native.listen(path, parseInt(mode, 8), 4);
print({ mode: fs.statSync(path).mode & 0o7777, info: native.socketInfo(fd) });
