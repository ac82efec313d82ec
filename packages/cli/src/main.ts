#!/usr/bin/env node
/*
 * NAME
 *   sluice - the command line of the Sluice file-transit station
 *
 * SYNOPSIS
 *   sluice dev --dir DIR [--uploaders NAME,NAME...]
 *   sluice demo
 *   sluice status [--config FILE | --dir DIR] [--json] [--max-age SECONDS] [--max-signature-age DAYS]
 *   sluice config check FILE
 *   sluice keygen --out DIR [--name NAME]
 *   sluice verify FILE REPORT --pub PUBKEY [--json]
 *   sluice verify --report-only REPORT --pub PUBKEY [--json]
 *   sluice uploader add NAME --key PUBKEY_FILE | remove NAME [--purge] | list [--json]
 *   sluice log verify DIR --pub PUBKEY
 *   sluice log prove DIR --from N --to M
 *
 * DESCRIPTION
 *   dev      run ingress, transit and egress under DIR (see dev.ts).
 *   demo     run the pipeline in a temporary directory, drop sample files,
 *            print what happened to each, stop.
 *   status   is each stage up, what waits, what passed, what needs a
 *            person; Nagios exit codes (status.ts, docs/operations.md).
 *   config   check a configuration file: every problem, naming its key.
 *   keygen   write a signing key pair: NAME.key (0400) and NAME.pub.
 *   verify   check a report: both signatures, the file's size and SHA-256,
 *            and the verdict. Exit codes are in docs/report-format.md.
 *   log      audit a station's transparency log (every leaf, every tree
 *            head, consistency between consecutive heads; exit 0, or 3
 *            naming the first inconsistency), or print the RFC 9162
 *            consistency proof from its first N leaves to its first M.
 *   uploader as root: make, retire and list the named uploaders' accounts,
 *            directories and keys (see uploader.ts).
 *
 * DIAGNOSTICS
 *   Exit 2 on a usage error, with a one-line message on stderr.
 */
import * as fs from 'node:fs';
import { parseConfigText, ConfigError, UPLOADER_NAME } from '@sluice/core';
import {
  writeKeyFiles,
  loadPublicKey,
  verifyReport,
  verifyResultJson,
  hashFile,
  auditLog,
  proveConsistency,
  KeyFileError,
  MAX_REPORT_BYTES,
  type PublicKey,
} from '@sluice/report';
import { devLayout, runDev } from './dev.js';
import { runDemo } from './demo.js';
import { runUploader } from './uploader.js';
import { EXIT, formatHuman, readStatus, statusDirOf } from './status.js';

const USAGE = `usage:
  sluice dev --dir DIR [--uploaders NAME,NAME...]
  sluice demo
  sluice status [--config FILE | --dir DIR] [--json] [--max-age SECONDS] [--max-signature-age DAYS]
  sluice config check FILE
  sluice keygen --out DIR [--name NAME]
  sluice verify FILE REPORT --pub PUBKEY [--json]
  sluice verify --report-only REPORT --pub PUBKEY [--json]
  sluice uploader add NAME --key PUBKEY_FILE | remove NAME [--purge] | list [--json]
  sluice log verify DIR --pub PUBKEY
  sluice log prove DIR --from N --to M`;

class UsageError extends Error {}

/** takeOption - remove `--name VALUE` from args and return VALUE. */
function takeOption(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new UsageError(`${name} needs a value`);
  args.splice(i, 2);
  return v;
}

/** takeFlag - remove `--name` from args; true if it was there. */
function takeFlag(args: string[], name: string): boolean {
  const i = args.indexOf(name);
  if (i < 0) return false;
  args.splice(i, 1);
  return true;
}

function noMore(args: string[]): void {
  if (args.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(args[0])}`);
}

async function main(argv: string[]): Promise<number> {
  const args = [...argv];
  const cmd = args.shift();
  switch (cmd) {
    case 'dev': {
      const dir = takeOption(args, '--dir');
      if (!dir) throw new UsageError('sluice dev needs --dir DIR');
      const list = takeOption(args, '--uploaders');
      const uploaders = list === undefined ? [] : list.split(',');
      const bad = uploaders.find((n) => !UPLOADER_NAME.test(n));
      if (bad !== undefined) throw new UsageError(`--uploaders: ${JSON.stringify(bad)} is not an uploader name (${UPLOADER_NAME.source})`);
      noMore(args);
      return runDev(dir, uploaders);
    }
    case 'demo':
      noMore(args);
      return runDemo();
    case 'status':
      return statusCommand(args);
    case 'config': {
      if (args.shift() !== 'check' || args.length !== 1) throw new UsageError('usage: sluice config check FILE');
      const file = args[0]!;
      try {
        parseConfigText(fs.readFileSync(file, 'utf8'), file);
      } catch (err) {
        if (err instanceof ConfigError) {
          process.stderr.write(`${err.message}\n`);
          return 1;
        }
        process.stderr.write(`${file}: cannot read: ${(err as Error).message}\n`);
        return 1;
      }
      process.stdout.write(`${file}: ok\n`);
      return 0;
    }
    case 'keygen': {
      const out = takeOption(args, '--out');
      const name = takeOption(args, '--name');
      if (!out) throw new UsageError('sluice keygen needs --out DIR');
      noMore(args);
      fs.mkdirSync(out, { recursive: true, mode: 0o700 });
      const files = writeKeyFiles(out, name ? { name } : {});
      process.stdout.write(`private key: ${files.secretPath} (mode 0400; give it to egress only)\npublic key:  ${files.publicPath}\nkey id:      ${files.keyId}\n`);
      return 0;
    }
    case 'verify':
      return verifyCommand(args);
    case 'uploader':
      return runUploader(args);
    case 'log':
      return logCommand(args);
    case undefined:
    case '--help':
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      return cmd === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command ${JSON.stringify(cmd)}`);
  }
}

/** statusCommand - `sluice status`: exit 0/1/2 as Nagios reads them, 3 (UNKNOWN) for anything that keeps it from knowing. */
function statusCommand(args: string[]): number {
  const unknown = (msg: string) => {
    process.stdout.write(`SLUICE UNKNOWN - ${msg}\n`);
    return EXIT.UNKNOWN;
  };
  let json: boolean, dir: string | undefined, config: string | undefined, maxAge: string | undefined, maxSig: string | undefined;
  try {
    json = takeFlag(args, '--json');
    dir = takeOption(args, '--dir');
    config = takeOption(args, '--config');
    maxAge = takeOption(args, '--max-age');
    maxSig = takeOption(args, '--max-signature-age');
    noMore(args);
    if (dir && config) throw new UsageError('give --dir or --config, not both');
  } catch (err) {
    return unknown(`${(err as Error).message}\n${USAGE}`);
  }
  const positive = (v: string | undefined, dflt: number, name: string) => {
    if (v === undefined) return dflt;
    if (!/^\d+(\.\d+)?$/.test(v)) throw new UsageError(`${name} needs a positive number, got ${JSON.stringify(v)}`);
    return Number(v);
  };
  let statusDir: string;
  let thresholds;
  try {
    thresholds = { maxAgeSeconds: positive(maxAge, 3600, '--max-age'), maxSignatureAgeDays: positive(maxSig, 7, '--max-signature-age') };
    statusDir = statusDirOf(dir ? devLayout(dir).config : (config ?? '/etc/sluice/sluice.json'));
  } catch (err) {
    return unknown(err instanceof ConfigError ? err.message : (err as Error).message);
  }
  const report = readStatus(statusDir, thresholds);
  process.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : formatHuman(report));
  return report.exitCode;
}

/** publicKeyArg - the public key file a --pub option names; a bad one is a usage error. */
function publicKeyArg(file: string): PublicKey {
  try {
    return loadPublicKey(file);
  } catch (err) {
    if (err instanceof KeyFileError) throw new UsageError(err.message);
    throw err;
  }
}

/** Exit code of `sluice log verify` for a log that does not check out. */
const EXIT_LOG_INCONSISTENT = 3;

/** logCommand - `sluice log verify` and `sluice log prove` (docs/report-format.md, "Transparency log"). */
function logCommand(args: string[]): number {
  const sub = args.shift();
  if (sub === 'verify') {
    const pubPath = takeOption(args, '--pub');
    if (!pubPath || args.length !== 1) throw new UsageError('usage: sluice log verify DIR --pub PUBKEY');
    const publicKey = publicKeyArg(pubPath);
    let audit;
    try {
      audit = auditLog(args[0]!, publicKey);
    } catch (err) {
      throw new UsageError(`${args[0]}: cannot read the log: ${(err as Error).message}`);
    }
    if (!audit.ok) {
      process.stderr.write(`FAILED: ${args[0]}: ${audit.problem}
`);
      return EXIT_LOG_INCONSISTENT;
    }
    const pending =
      (audit.unpublished > 0 ? `, ${audit.unpublished} after the last head (not yet published)` : '') +
      (audit.partialBytes ? `, ${audit.partialBytes} bytes of a leaf record being written (or torn by a crash) at the end` : '');
    process.stdout.write(`ok: ${audit.leaves} leaves, ${audit.heads} tree heads, each signed and consistent with the one before${pending}
`);
    return 0;
  }
  if (sub === 'prove') {
    const from = takeOption(args, '--from');
    const to = takeOption(args, '--to');
    if (from === undefined || to === undefined || args.length !== 1) throw new UsageError('usage: sluice log prove DIR --from N --to M');
    const size = (v: string, name: string) => {
      if (!/^\d{1,15}$/.test(v)) throw new UsageError(`${name} needs a tree size (a whole number), got ${JSON.stringify(v)}`);
      return Number(v);
    };
    const m = size(from, '--from');
    const n = size(to, '--to');
    if (m > n) throw new UsageError('need --from <= --to');
    let out;
    try {
      out = proveConsistency(args[0]!, m, n);
    } catch (err) {
      if (err instanceof RangeError) throw new UsageError(`${args[0]}: ${err.message} (--to ${n})`);
      throw new UsageError(`${args[0]}: cannot read the log: ${(err as Error).message}`);
    }
    process.stdout.write(`${JSON.stringify(out)}
`);
    return 0;
  }
  throw new UsageError('usage: sluice log verify DIR --pub PUBKEY | sluice log prove DIR --from N --to M');
}

/** verifyCommand - `sluice verify`: one line (or one JSON object) and a distinct exit code per outcome. */
async function verifyCommand(args: string[]): Promise<number> {
  const json = takeFlag(args, '--json');
  const reportOnly = takeFlag(args, '--report-only');
  const pubPath = takeOption(args, '--pub');
  if (!pubPath) throw new UsageError('sluice verify needs --pub PUBKEY');
  const expected = reportOnly ? 1 : 2;
  if (args.length !== expected) {
    throw new UsageError(reportOnly ? 'usage: sluice verify --report-only REPORT --pub PUBKEY' : 'usage: sluice verify FILE REPORT --pub PUBKEY');
  }
  const reportPath = args[expected - 1]!;
  const publicKey = publicKeyArg(pubPath);
  const reportText = readReportFile(reportPath);
  let file;
  if (!reportOnly) {
    try {
      file = await hashFile(args[0]!);
    } catch (err) {
      throw new UsageError(`${args[0]}: cannot read: ${(err as Error).message}`);
    }
  }
  const res = verifyReport({ reportText, publicKey, file, reportOnly });
  if (json) process.stdout.write(`${verifyResultJson(res)}\n`);
  else if (res.ok) process.stdout.write(`${res.reason}\n`);
  else process.stderr.write(`FAILED: ${res.reason}\n`);
  return res.exitCode;
}

/**
 * readReportFile - the report's bytes, at most MAX_REPORT_BYTES + 1 of them
 * (verifyReport calls a longer one malformed without parsing it). A report
 * that is not a regular file (a FIFO would block for ever, a directory has
 * no bytes) is a usage error. The bytes go to verifyReport as they are: a
 * report file is ASCII, and decoding it first would hide what is not.
 */
function readReportFile(reportPath: string): Uint8Array {
  let fd: number;
  try {
    fd = fs.openSync(reportPath, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    throw new UsageError(`${reportPath}: cannot read: ${(err as Error).message}`);
  }
  try {
    if (!fs.fstatSync(fd).isFile()) throw new UsageError(`${reportPath}: not a regular file`);
    const buf = Buffer.alloc(MAX_REPORT_BYTES + 1);
    let len = 0;
    while (len < buf.length) {
      const n = fs.readSync(fd, buf, len, buf.length - len, null);
      if (n === 0) break;
      len += n;
    }
    return buf.subarray(0, len);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${reportPath}: cannot read: ${(err as Error).message}`);
  } finally {
    fs.closeSync(fd);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    if (err instanceof UsageError) {
      process.stderr.write(`sluice: ${err.message}\n${USAGE}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`sluice: ${(err as Error).message}\n`);
    process.exitCode = 1;
  },
);
