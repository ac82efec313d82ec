// pipeline - run `sluice dev` (the compiled CLI, three real daemon processes)
// for end-to-end tests, and watch what it does.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { loadPublicKey, verifyReport, type VerifyResult } from '../../packages/report/src/index.js';

export const CLI = fileURLToPath(new URL('../../packages/cli/dist/main.js', import.meta.url));

export type LogLine = Record<string, unknown> & { stage?: string; event?: string; id?: string };

export interface Report {
  verdict: 'accepted' | 'rejected';
  /** null: an upload refused at pickup, never copied (docs/report-format.md, section 1.2). */
  sha256: string | null;
  /** For an upload never copied: the size ingress saw, or null. */
  size: number | null;
  reason: string;
  transfer: string;
  name: { original: string; stored: string };
  checks: { name: string; result: string; reason: string }[];
  /** Present only for a file from a named uploader. */
  uploader?: string;
}

export interface Found {
  place: 'outbox' | 'rejected';
  reportPath: string;
  report: Report;
}

export class Pipeline {
  readonly dir: string;
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  private buf = '';

  private constructor(dir: string, child: ChildProcess) {
    this.dir = dir;
    this.child = child;
    child.stdout!.on('data', (d: Buffer) => {
      this.buf += d.toString();
      let i;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          this.lines.push({ event: 'unparsed', text: line });
        }
      }
    });
  }

  /** start - write a dev configuration (with overrides) and start `sluice dev`; resolves when all three stages are up. */
  static async start(
    config: (dir: string) => unknown = () => undefined,
    opts: {
      connections?: number;
      env?: NodeJS.ProcessEnv;
      wrap?: string[];
      uid?: number;
      /** `sluice dev --uploaders a,b`. */
      uploaders?: string[];
      /** Runs on the fresh directory before `sluice dev` starts (e.g. files already waiting in an inbox). */
      prepare?: (dir: string) => void;
    } = {},
  ): Promise<Pipeline> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-e2e-'));
    const doc = config(dir);
    if (doc !== undefined) fs.writeFileSync(path.join(dir, 'sluice.json'), JSON.stringify(doc));
    opts.prepare?.(dir);
    const env = opts.env ? { ...process.env, ...opts.env } : process.env;
    let argv = [process.execPath, CLI, 'dev', '--dir', dir, ...(opts.uploaders ? ['--uploaders', opts.uploaders.join(',')] : [])];
    if (opts.uid !== undefined) {
      // Root only: the whole pipeline under another uid (setpriv execs, so the child is sluice dev itself).
      fs.chownSync(dir, opts.uid, opts.uid);
      if (doc !== undefined) fs.chownSync(path.join(dir, 'sluice.json'), opts.uid, opts.uid);
      argv = ['setpriv', `--reuid=${opts.uid}`, `--regid=${opts.uid}`, '--clear-groups', ...argv];
    }
    // wrap: a command that runs `sluice dev` (e.g. prlimit with its options), so every stage inherits what it sets.
    argv = [...(opts.wrap ?? []), ...argv];
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'], env });
    const p = new Pipeline(dir, child);
    await p.waitFor(() => ['ingress', 'transit', 'egress'].every((s) => p.lines.some((l) => l.stage === s && l.event === 'started')), 30_000, 'all stages started');
    // Connected downstream too, so the first file is not sent into a retry.
    const want = opts.connections ?? 2;
    await p.waitFor(() => p.lines.filter((l) => l.event === 'downstream-connected').length >= want, 30_000, 'stages connected');
    return p;
  }

  get inbox(): string {
    return path.join(this.dir, 'inbox');
  }
  get outbox(): string {
    return path.join(this.dir, 'outbox');
  }
  get rejected(): string {
    return path.join(this.dir, 'rejected');
  }
  /** inboxOf, resultsOf - a named uploader's directories under `sluice dev --uploaders`. */
  inboxOf(uploader: string): string {
    return path.join(this.dir, 'inbox', uploader);
  }
  resultsOf(uploader: string): string {
    return path.join(this.dir, 'results', uploader);
  }
  get publicKey(): string {
    return path.join(this.dir, 'keys', 'signing.pub');
  }

  /** drop - an upload the careful way: write under a .part name, rename in. */
  drop(name: string, bytes: string | Uint8Array, inbox = this.inbox): void {
    const tmp = path.join(inbox, `.upload-${process.pid}-${Math.random().toString(36).slice(2)}.part`);
    fs.writeFileSync(tmp, bytes);
    fs.renameSync(tmp, path.join(inbox, name));
  }

  /** reports - every report in outbox/ and rejected/. */
  reports(): Found[] {
    const out: Found[] = [];
    for (const place of ['outbox', 'rejected'] as const) {
      const d = path.join(this.dir, place);
      for (const f of fs.readdirSync(d)) {
        if (!f.endsWith('.sluice.json')) continue;
        const reportPath = path.join(d, f);
        out.push({ place, reportPath, report: JSON.parse(fs.readFileSync(reportPath, 'utf8')) as Report });
      }
    }
    return out;
  }

  /** verify - the report's signatures, digest and verdict, and for an accepted file the delivered bytes, as `sluice verify` checks them. */
  verify(found: Found): VerifyResult {
    const reportText = fs.readFileSync(found.reportPath, 'utf8');
    const publicKey = loadPublicKey(this.publicKey);
    if (found.place === 'outbox') {
      const bytes = fs.readFileSync(path.join(this.outbox, found.report.name.stored));
      const sha256hex = createHash('sha256').update(bytes).digest('hex');
      return verifyReport({ reportText, publicKey, file: { size: bytes.length, sha256hex }, reportOnly: false });
    }
    return verifyReport({ reportText, publicKey, reportOnly: true });
  }

  /** reportFor - the report whose original name is `name`, waiting for it. */
  async reportFor(name: string, timeoutMs = 30_000): Promise<Found> {
    let found: Found | undefined;
    await this.waitFor(() => (found = this.reports().find((r) => r.report.name.original === name)) !== undefined, timeoutMs, `report for ${JSON.stringify(name)}`);
    return found!;
  }

  async waitFor(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; last log lines:\n${this.lines.slice(-15).map((l) => JSON.stringify(l)).join('\n')}`);
      if (this.child.exitCode !== null) throw new Error(`sluice dev exited (${this.child.exitCode}) while waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  events(event: string): LogLine[] {
    return this.lines.filter((l) => l.event === event);
  }

  /** stop - SIGTERM and wait; returns the exit code. Removes the directory unless keep. */
  async stop(keep = false): Promise<number | null> {
    if (this.child.exitCode === null) {
      this.child.kill('SIGTERM');
      await new Promise((r) => this.child.once('exit', r));
    }
    if (!keep) fs.rmSync(this.dir, { recursive: true, force: true });
    return this.child.exitCode;
  }
}
