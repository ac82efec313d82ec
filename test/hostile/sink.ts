/*
 * NAME
 *   sink - a stand-in transit that checks and acks everything ingress sends
 *
 * SYNOPSIS
 *   const sink = FakeTransit.listen(`${dir}/transit.sock`, wireLimits(cfg));   // the limits ingress runs with
 *   ... run ingress with ingress.transitSocket pointing there ...
 *   sink.names        // uploaded name -> how many records carried it
 *   sink.problems     // anything ingress sent that transit would refuse
 *   sink.close();
 *
 * DESCRIPTION
 *   To put ingress alone under a flood (10,000 uploads), the downstream must
 *   not be the bottleneck: a real egress signs every report with ML-DSA-65,
 *   which on a 2-core machine caps the pipeline far below what ingress can
 *   take in. This sink speaks transit's side of the wire contract
 *   (docs/protocol.md) through the same native addon: it accepts any
 *   connection, decodes each record strictly, checks the descriptor the way
 *   transit would (read-only, not O_PATH, a regular file of the claimed
 *   size, whose bytes hash to the claim), closes it, and acks DELIVERED with
 *   the record's id and digest. Whatever fails a check is written to
 *   `problems`; the test requires it to stay empty.
 *
 * SECURITY
 *   Test code, listening on a socket under the test's own directory.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { native, constants as C, type Poller } from '../../packages/native/src/index.js';
import { decodeIngressTransfer, encodeAck, ProtocolError, type Limits } from '../../packages/protocol/src/index.js';

export class FakeTransit {
  readonly names = new Map<string, number>();
  readonly problems: string[] = [];
  private readonly listenFd: number;
  private readonly poller: Poller;
  private readonly conns = new Map<number, Poller>();

  static listen(sock: string, limits: Limits): FakeTransit {
    return new FakeTransit(native.listen(sock, 0o600, 128), limits);
  }

  private constructor(
    fd: number,
    private readonly limits: Limits,
  ) {
    this.listenFd = fd;
    this.poller = native.poll(fd, () => this.accept());
    this.poller.start(C.POLL_READABLE);
  }

  /** records - how many records arrived. */
  get records(): number {
    let n = 0;
    for (const c of this.names.values()) n += c;
    return n;
  }

  close(): void {
    this.poller.close();
    for (const [fd, p] of this.conns) {
      p.close();
      fs.closeSync(fd);
    }
    fs.closeSync(this.listenFd);
  }

  private accept(): void {
    for (let fd = native.accept(this.listenFd); fd >= 0; fd = native.accept(this.listenFd)) {
      const conn = fd;
      const p = native.poll(conn, () => this.drain(conn));
      this.conns.set(conn, p);
      p.start(C.POLL_READABLE | C.POLL_DISCONNECT);
    }
  }

  private drain(conn: number): void {
    for (;;) {
      let rec;
      try {
        rec = native.recv(conn, 65536);
      } catch (err) {
        this.problems.push(`recv: ${(err as Error).message}`);
        continue;
      }
      if (rec === null) return;
      if (rec.data.length === 0 && rec.fd < 0) {
        this.conns.get(conn)?.close();
        this.conns.delete(conn);
        fs.closeSync(conn);
        return;
      }
      try {
        this.handle(conn, rec.data, rec.fd);
      } finally {
        if (rec.fd >= 0) fs.closeSync(rec.fd);
      }
    }
  }

  /** handle - transit's checks, in transit's order; ack DELIVERED whatever happens (the test reads `problems`). */
  private handle(conn: number, data: Buffer, fd: number): void {
    let t;
    try {
      t = decodeIngressTransfer(data, this.limits);
    } catch (err) {
      this.problems.push(`record: ${err instanceof ProtocolError ? err.reason : String(err)}`);
      return;
    }
    this.names.set(t.name, (this.names.get(t.name) ?? 0) + 1);
    const problem = (what: string) => this.problems.push(`${t.name}: ${what}`);
    if (fd < 0) problem('no descriptor');
    else {
      const flags = native.fdFlags(fd);
      if ((flags & C.O_PATH) === C.O_PATH || (flags & C.O_ACCMODE) !== C.O_RDONLY) problem(`descriptor flags ${flags.toString(8)}`);
      const st = fs.fstatSync(fd);
      if (!st.isFile() || st.size !== t.size) problem(`not a regular file of ${t.size} bytes`);
      const bytes = Buffer.alloc(t.size);
      if (t.size > 0) fs.readSync(fd, bytes, 0, t.size, 0);
      if (!createHash('sha256').update(bytes).digest().equals(Buffer.from(t.sha256))) problem('digest differs from the claim');
    }
    if (native.send(conn, encodeAck({ id: t.id, sha256: t.sha256, status: 'delivered', reason: 'accepted' }, this.limits), -1) < 0) problem('ack would block');
  }
}
