// hold-open - hold FILE open with FLAGS ('r', 'r+', 'w', ...) until stdin closes.
//   node hold-open.mjs FILE FLAGS
import fs from 'node:fs';

const [file, flags] = process.argv.slice(2);
const fd = fs.openSync(file, flags);
process.stdout.write('ready\n');
process.stdin.resume();
process.stdin.on('end', () => {
  fs.closeSync(fd);
  process.exit(0);
});
