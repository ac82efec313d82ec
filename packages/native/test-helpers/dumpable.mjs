// dumpable - set this process's dumpable attribute (argv[2]: 0 or 1), print
// what prctl(PR_GET_DUMPABLE) says before and after, and wait for stdin to close.
import { native } from './addon.mjs';

const before = native.getDumpable();
native.setDumpable(Number(process.argv[2]));
process.stdout.write(`${JSON.stringify({ pid: process.pid, before, after: native.getDumpable() })}\n`);
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
