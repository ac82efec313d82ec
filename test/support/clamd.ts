// clamd - a real ClamAV daemon for tests: a private clamd as the benchmark
// starts one (bench/lib/clamd.mjs: Debian's /usr/sbin/clamd in the
// foreground, with its own clamd.conf, socket and signature database), in a
// temporary directory. The database is one .ndb line built at run time
// from the EICAR test string, which is itself assembled here and never
// stored whole in the repository (a scanner looking at the checkout, or a
// mail gateway looking at a patch, would rightly flag it). clamd starts in
// about 0.1 s with such a database and appends ".UNOFFICIAL" to the name.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { CLAMD, ClamdProcess, writeClamdConf } from '../../bench/lib/clamd.mjs';

export { CLAMD };
export const YARA = '/usr/bin/yara';
export const YARAC = '/usr/bin/yarac';
export const HAVE_CLAMD = fs.existsSync(CLAMD);
export const HAVE_YARA = fs.existsSync(YARA) && fs.existsSync(YARAC);
/** Why scanner tests are skipped, or '' when they can run (CI installs both: .ci/run). */
export const SKIP_REASON = [
  HAVE_CLAMD ? '' : `${CLAMD} missing (apt-get install clamav-daemon)`,
  HAVE_YARA ? '' : `${YARA}/${YARAC} missing (apt-get install yara)`,
]
  .filter(Boolean)
  .join('; ');

/** The signature name clamd reports for the test database's one entry. */
export const EICAR_SIGNATURE = 'Eicar-Test.UNOFFICIAL';

/** eicar - the 68-byte EICAR anti-virus test file, assembled (see the top of this file). */
export function eicar(): Buffer {
  const head = ['X5O!P%@AP', '[4\\PZX54(P^)7CC)7}$'].join('');
  const tail = ['EICAR', 'STANDARD', 'ANTIVIRUS', 'TEST', 'FILE!$H+H*'].join('-');
  const bytes = Buffer.from(head + tail, 'ascii');
  // The published digest of the 68-byte file: a typo here would make every test meaningless.
  if (createHash('md5').update(bytes).digest('hex') !== '44d88612fea8a8f36de82e1278abb02f') throw new Error('EICAR string assembled wrongly');
  return bytes;
}

export interface ClamdOptions {
  /** Also listen on 127.0.0.1:<a free port> (for INSTREAM tests). */
  tcp?: boolean;
  /** clamd.conf StreamMaxLength, e.g. '1M'. */
  streamMaxLength?: string;
  /** clamd.conf MaxFileSize (and MaxScanSize), e.g. '1M'. */
  maxFileSize?: string;
  /**
   * Ship the signature as a versioned database (daily.cud, see cudDatabase)
   * so that clamd's VERSION names a signature database version, as it does
   * with Debian's official databases: "ClamAV 1.4.6/<dbVersion>/<date>".
   * Without it, a plain .ndb: "ClamAV 1.4.6".
   */
  dbVersion?: number;
}

/** engineFor - what clamd's VERSION says for a test database of this version: "ClamAV x.y.z/<v>/<ctime date>". */
export function engineFor(dbVersion: number): RegExp {
  return new RegExp(`^ClamAV \\d+\\.\\d+\\.\\d+/${dbVersion}/\\w{3} \\w{3} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d \\d{4}$`);
}

/** tarEntry - one USTAR regular-file entry (header and data padded to 512-byte blocks). */
function tarEntry(name: string, data: Buffer): Buffer {
  const h = Buffer.alloc(512);
  const put = (off: number, len: number, text: string) => h.write(text.slice(0, len), off, len, 'ascii');
  put(0, 100, name);
  put(100, 8, '0000644\0');
  put(108, 8, '0000000\0');
  put(116, 8, '0000000\0');
  put(124, 12, `${data.length.toString(8).padStart(11, '0')}\0`);
  put(136, 12, `${Math.floor(Date.now() / 1000).toString(8).padStart(11, '0')}\0`);
  put(148, 8, '        ');
  put(156, 1, '0');
  put(257, 8, 'ustar\u000000');
  let sum = 0;
  for (const b of h) sum += b;
  put(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return Buffer.concat([h, data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}

/**
 * cudDatabase - an unsigned ClamAV database container (.cud: the format of
 * a .cvd, which clamd loads without a digital signature): a 512-byte header
 * "ClamAV-VDB:time:version:sigs:flevel:md5:dsig:builder:stime", then a
 * tar.gz with a .info file (the header line again, and each member's size
 * and SHA-256) and the members. clamd takes its database version and date
 * from the header; its signatures still get ".UNOFFICIAL".
 */
function cudDatabase(version: number, members: Record<string, Buffer>): Buffer {
  const stime = Math.floor(Date.now() / 1000);
  const header = `ClamAV-VDB:sluice test database:${version}:${Object.keys(members).length}:90:x:x:sluice-tests:${stime}`;
  const info = [header, ...Object.entries(members).map(([n, d]) => `${n}:${d.length}:${createHash('sha256').update(d).digest('hex')}`)].join('\n');
  const tar = Buffer.concat([
    tarEntry('daily.info', Buffer.from(`${info}\n`)),
    ...Object.entries(members).map(([n, d]) => tarEntry(n, d)),
    Buffer.alloc(1024),
  ]);
  return Buffer.concat([Buffer.from(header.padEnd(512, ' '), 'ascii'), gzipSync(tar)]);
}

/** freePort - a TCP port nobody listens on right now. */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

export class Clamd {
  readonly dir: string;
  readonly socket: string;
  readonly conf: string;
  port = 0;
  private process: ClamdProcess | null = null;

  private constructor(dir: string, socket: string, conf: string) {
    this.dir = dir;
    this.socket = socket;
    this.conf = conf;
  }

  /** create - write the database and clamd.conf (does not start clamd). */
  static async create(opts: ClamdOptions = {}): Promise<Clamd> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-clamd-'));
    const port = opts.tcp ? await freePort() : 0;
    const lines: string[] = [];
    if (opts.tcp) lines.push(`TCPSocket ${port}`, 'TCPAddr 127.0.0.1');
    if (opts.streamMaxLength) lines.push(`StreamMaxLength ${opts.streamMaxLength}`);
    if (opts.maxFileSize) lines.push(`MaxFileSize ${opts.maxFileSize}`, `MaxScanSize ${opts.maxFileSize}`);
    const { socket, conf, db } = writeClamdConf(dir, { socketMode: '660', threads: 4, lines });
    const c = new Clamd(dir, socket, conf);
    c.port = port;
    // name:target type (0 = any file):offset (* = anywhere):hex. Anywhere, so a test string in the middle of a file is found too.
    const ndb = Buffer.from(`Eicar-Test:0:*:${eicar().toString('hex')}\n`);
    if (opts.dbVersion === undefined) fs.writeFileSync(path.join(db, 'sluice-test.ndb'), ndb);
    else fs.writeFileSync(path.join(db, 'daily.cud'), cudDatabase(opts.dbVersion, { 'sluice-test.ndb': ndb }));
    return c;
  }

  /** start - run clamd and wait until it answers PING. */
  async start(): Promise<void> {
    if (this.process) throw new Error('clamd already running');
    this.process = await ClamdProcess.start(this.conf, this.socket);
  }

  get running(): boolean {
    return this.process !== null;
  }

  /** stop - SIGTERM (SIGCONT first, in case it is paused) and wait for it to exit. */
  async stop(): Promise<void> {
    const p = this.process;
    this.process = null;
    await p?.stop();
  }

  /** pause/resume - SIGSTOP/SIGCONT: connections are still accepted by the kernel, nothing is answered. */
  pause(): void {
    this.process?.signal('SIGSTOP');
  }
  resume(): void {
    this.process?.signal('SIGCONT');
  }

  /** destroy - stop and remove the directory. */
  async destroy(): Promise<void> {
    await this.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
