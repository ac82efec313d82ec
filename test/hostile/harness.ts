/*
 * NAME
 *   harness - run one attack on one stage of a live pipeline and judge it
 *
 * SYNOPSIS
 *   const t = await Target.start('transit');          // a `sluice dev` pipeline; attack transit
 *   await t.attack('a FIFO', async (a) => { ... }, { event: 'record-refused', reason: 'fd-not-regular' });
 *   await t.stop();
 *
 * DESCRIPTION
 *   Target.start runs `sluice dev` (test/support/pipeline.ts) and aims at
 *   one listening stage: transit (the attacker plays ingress) or egress (it
 *   plays transit). It sends one clean file first, so that everything a
 *   stage opens lazily (threadpool, signer workers) is open before the
 *   first descriptor count.
 *
 *   attack(name, fn, expect) judges one case by the four rules:
 *
 *   1. The stage stays up and serves: same pid as before, no stage-exited
 *      line, and a clean file sent afterwards, on a new connection, is
 *      acked DELIVERED and lands in the outbox byte for byte.
 *   2. One structured event names the reason: among the target stage's
 *      lines about this attack (peer pid of the attacker's connections, or
 *      a transfer id it used), exactly `expect.count` (default 1) carry
 *      `expect.event` with a reason matching `expect.reason`, and no other
 *      warn/error/fatal line is about the attack. No stage logs an
 *      error-level line at all (those mean a bug or resource trouble).
 *   3. Nothing from the attack is delivered except bytes identical to what
 *      the attacker claimed and the stage checked: every new file in the
 *      outbox is either the clean file or has exactly the bytes of one of
 *      the attack's `allowed` buffers (a claim it made truthfully).
 *   4. No descriptor leaks: /proc/PID/fd of the stage counts the same after
 *      the attack (connections closed) as before it.
 */
import { expect } from 'vitest';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { devConfig } from '../../packages/cli/src/dev.js';
import type { CheckResult, Verdict } from '../../packages/protocol/src/index.js';
import { Pipeline, type LogLine } from '../support/pipeline.js';
import { Peer, fdTargets, ingressRecord, newId, settledFdCount, steadyFdCount, transitRecord, type Claim } from './impersonate.js';

export type Hop = 'transit' | 'egress';

/** What one attack did: whom to attribute log lines to, and which bytes it may legitimately get delivered. */
export interface AttackLog {
  /** Peer pids of the attacker's connections (this process for Peer; Python's pid for sendFds). */
  pids: Set<number>;
  /** Transfer ids the attack used. */
  ids: Set<string>;
  /** Byte strings the attacker claimed truthfully; an output equal to one of them is allowed. */
  allowed: Buffer[];
  /** Connections to close when the case ends. */
  peers: Peer[];
  /** Descriptors to close when the case ends. */
  fds: number[];
}

export interface Expect {
  event: string;
  /** The `reason` of that event (a stable code, or a pattern over a text reason); undefined: any or none. */
  reason?: string | RegExp;
  /** How many such events (default 1: one per hostile record); a function is asked after the attack ran. */
  count?: number | (() => number);
  /** Further routine (info) events about the attack that are expected (e.g. duplicate-acked). */
  alsoAllowed?: string[];
  /** The expected event may be logged at error level (a refusal an operator should look at). */
  errorLevel?: boolean;
}

const peerPid = (l: LogLine): number => (l.peer as { pid?: number } | undefined)?.pid ?? -1;

const expectedCount = (w: Expect): number => (typeof w.count === 'function' ? w.count() : (w.count ?? 1));

const RELAXED_EVENTS = new Set(['peer-connected', 'peer-disconnected', 'received', 'checked', 'forwarded', 'acked', 'delivered']);

export class Target {
  readonly p: Pipeline;
  readonly hop: Hop;
  readonly pid: number;
  readonly scratch: string;
  private cleanNo = 0;
  private readonly cleanNames = new Set<string>();
  /** Transfer ids of the clean files: their lines are not about any attack, though they share our pid. */
  private readonly cleanIds = new Set<string>();

  private constructor(p: Pipeline, hop: Hop, pid: number) {
    this.p = p;
    this.hop = hop;
    this.pid = pid;
    this.scratch = fs.mkdtempSync(path.join(p.dir, 'attacker-'));
  }

  /** start - a dev pipeline with room for big attack files; aim at `hop`. */
  static async start(hop: Hop, opts: { wrap?: string[] } = {}): Promise<Target> {
    const p = await Pipeline.start(
      (dir) =>
        devConfig(dir, {
          limits: { maxFileBytes: 256 * 1024 * 1024 },
          // Nothing is dropped into the inbox by these tests; keep ingress quiet.
          ingress: { rescanIntervalMs: 60_000 },
        }),
      opts,
    );
    const started = p.lines.filter((l) => l.stage === hop && l.event === 'started').at(-1);
    const t = new Target(p, hop, Number(started!.pid));
    await t.deliverClean('warm-up');
    return t;
  }

  get sock(): string {
    return path.join(this.p.dir, 'run', this.hop === 'transit' ? 'transit.sock' : 'egress.sock');
  }

  /** record - a valid record for this hop (IngressTransfer to transit; a forged acceptance to egress). */
  record(c: Claim & { refusal?: string; verdict?: Verdict; checks?: CheckResult[] }): Uint8Array {
    return this.hop === 'transit' ? ingressRecord(c) : transitRecord(c);
  }

  /** file - a scratch file with these bytes (the attacker's own file). */
  file(bytes: Uint8Array | string, tag = 'f'): string {
    const f = path.join(this.scratch, `${tag}-${randomBytes(4).toString('hex')}`);
    fs.writeFileSync(f, bytes);
    return f;
  }

  /** deliverClean - an honest transfer on a fresh connection: must be acked DELIVERED and land in the outbox intact. */
  async deliverClean(tag: string): Promise<void> {
    // Printable ASCII only: the tag may be a hostile name, and a control character would make this file binary.
    const bytes = Buffer.from(`clean file ${++this.cleanNo} after ${tag.replace(/[^\x20-\x7e]/g, '?')}\n${randomBytes(16).toString('hex')}\n`);
    const name = `clean-${this.cleanNo}.txt`;
    const f = this.file(bytes, 'clean');
    const fd = fs.openSync(f, 'r');
    this.cleanNames.add(`outbox/${name}`);
    const mark = this.p.lines.length;
    const peer = await Peer.connect(this.sock);
    try {
      const id = newId('clean');
      this.cleanIds.add(id);
      await peer.send(this.record({ id, name, bytes }), fd);
      const ack = await peer.ack(60_000);
      expect(ack, `no ack for the clean file after ${tag}`).not.toBeNull();
      expect(ack!.id).toBe(id);
      expect([ack!.status, ack!.reason]).toEqual(['delivered', 'accepted']);
      expect(fs.readFileSync(path.join(this.p.outbox, name))).toEqual(bytes);
    } finally {
      peer.close();
      fs.closeSync(fd);
    }
    // Settled: the stage has seen this connection go, so its descriptor count is final.
    await this.p.waitFor(
      () => this.linesSince(mark).some((l) => l.event === 'peer-disconnected' && (l.peer as { pid?: number } | undefined)?.pid === process.pid),
      10_000,
      `${this.hop} sees the clean connection close`,
    );
  }

  /** linesSince - the target stage's log lines after index `mark`. */
  linesSince(mark: number): LogLine[] {
    return this.p.lines.slice(mark).filter((l) => l.stage === this.hop);
  }

  /**
   * about - is this log line about the attack? Lines naming one of its
   * transfer ids, or the pid of one of its connections, except lines about
   * a clean transfer (which comes from this process too).
   */
  about(l: LogLine, a: AttackLog): boolean {
    if (typeof l.id === 'string') return a.ids.has(l.id) || (!this.cleanIds.has(l.id) && a.pids.has(peerPid(l)));
    return a.pids.has(peerPid(l));
  }

  /** outputs - every file name in outbox/ and rejected/. */
  outputs(): Set<string> {
    return new Set([...fs.readdirSync(this.p.outbox).map((f) => `outbox/${f}`), ...fs.readdirSync(this.p.rejected).map((f) => `rejected/${f}`)]);
  }

  /**
   * attack - run one hostile case and hold the stage to the four rules (see
   * the header). `fn` does the attacking, recording what it did in `a`; it
   * may assert on acks itself.
   */
  async attack(name: string, fn: (a: AttackLog) => Promise<void>, want: Expect): Promise<AttackLog> {
    const baseline = await steadyFdCount(this.pid);
    const mark = this.p.lines.length;
    const before = this.outputs();
    const a: AttackLog = { pids: new Set(), ids: new Set(), allowed: [], peers: [], fds: [] };
    try {
      await fn(a);
      // Rule 2: the event naming the reason.
      const count = expectedCount(want);
      await this.p.waitFor(() => this.named(mark, a, want).length >= count, 60_000, `${name}: ${count} × ${want.event} ${String(want.reason)}`);
    } finally {
      for (const peer of a.peers) peer.close();
      for (const fd of a.fds) fs.closeSync(fd);
    }
    // Rule 1: still up, still serving.
    await this.deliverClean(name);
    // Late lines: wait until the stage has seen every connection of the attack (and the clean one) close;
    // after that nothing more about the attack can come, so the counts below are final.
    await this.p.waitFor(() => this.allClosed(mark, a), 30_000, `${name}: ${this.hop} sees every attack connection close`);
    const named = this.named(mark, a, want);
    expect(named.length, `${name}: ${want.event} lines: ${JSON.stringify(named)}`).toBe(expectedCount(want));
    // Every other line about the attack is routine (info) and of a known kind; no second complaint.
    const routine = new Set([...RELAXED_EVENTS, ...(want.alsoAllowed ?? [])]);
    const others = this.linesSince(mark).filter(
      (l) => this.about(l, a) && !named.includes(l) && (!routine.has(String(l.event)) || (l.level !== 'info' && l.level !== 'debug')),
    );
    expect(others, `${name}: other lines about the attack`).toEqual([]);
    const errors = this.p.lines
      .slice(mark)
      .filter((l) => (l.level === 'error' || l.level === 'fatal' || l.event === 'stage-exited') && !(want.errorLevel && named.includes(l)));
    expect(errors, `${name}: error lines`).toEqual([]);
    const started = this.p.lines.filter((l) => l.stage === this.hop && l.event === 'started').at(-1);
    expect(Number(started!.pid), `${name}: ${this.hop} was restarted`).toBe(this.pid);

    // Rule 3: nothing delivered but the clean file and bytes identical to a truthful claim.
    for (const out of this.outputs()) {
      if (before.has(out) || out.endsWith('.sluice.json') || this.cleanNames.has(out)) continue;
      expect(out.startsWith('outbox/'), `${name}: unexpected ${out}`).toBe(true);
      const bytes = fs.readFileSync(path.join(this.p.dir, out));
      expect(a.allowed.some((b) => b.equals(bytes)), `${name}: ${out} holds bytes nobody claimed truthfully`).toBe(true);
    }

    // Rule 4: no descriptor leaks.
    const after = await settledFdCount(this.pid, baseline);
    expect(after, `${name}: descriptors of ${this.hop} before ${baseline}, after ${after}:\n${fdTargets(this.pid).join('\n')}`).toBe(baseline);
    return a;
  }

  /**
   * allClosed - has the stage logged, since `mark`, a peer-disconnected for
   * every peer-connected of each attacker pid? (The clean connections share
   * this process's pid; they open and close as well.)
   */
  allClosed(mark: number, a: AttackLog): boolean {
    const open = new Map<number, number>();
    for (const l of this.linesSince(mark)) {
      const pid = peerPid(l);
      if (!a.pids.has(pid)) continue;
      if (l.event === 'peer-connected') open.set(pid, (open.get(pid) ?? 0) + 1);
      else if (l.event === 'peer-disconnected') open.set(pid, (open.get(pid) ?? 0) - 1);
    }
    return [...open.values()].every((n) => n <= 0);
  }

  /** named - the target's lines about the attack that carry the expected event and reason. */
  named(mark: number, a: AttackLog, want: Expect): LogLine[] {
    return this.linesSince(mark).filter(
      (l) =>
        this.about(l, a) &&
        l.event === want.event &&
        (want.reason === undefined || (typeof want.reason === 'string' ? l.reason === want.reason : want.reason.test(String(l.reason)))),
    );
  }

  /** connect - a new attacker connection, recorded in `a`. */
  async connect(a: AttackLog): Promise<Peer> {
    const peer = await Peer.connect(this.sock);
    a.pids.add(process.pid);
    a.peers.push(peer);
    return peer;
  }

  async stop(): Promise<void> {
    await this.p.stop();
  }
}
