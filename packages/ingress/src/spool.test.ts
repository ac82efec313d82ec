import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Spool, type SpoolMeta } from './spool.js';
import { newTransferId } from './pickup.js';

let dir: string;
let spool: Spool;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-spool-'));
  spool = new Spool(dir);
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const metaFor = (id: string, size: number): SpoolMeta => ({
  id,
  name: 'a.txt',
  rawName: Buffer.from('a.txt').toString('base64'),
  size,
  sha256: '00'.repeat(32),
  receivedAt: new Date().toISOString(),
  refusal: '',
  source: null,
});

describe('Spool.commit', () => {
  it('commits through the write-only descriptor the copy was written with, which stays open and the caller\'s', async () => {
    const id = newTransferId();
    const meta = metaFor(id, 13);
    const tmp = spool.tmpPath(id);
    const out = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    try {
      fs.writeSync(out, 'copied bytes\n');
      await spool.commit(meta, tmp, out);
      expect(fs.fstatSync(out).isFile()).toBe(true); // not closed by commit
    } finally {
      fs.closeSync(out);
    }
    expect(fs.readdirSync(dir).sort()).toEqual([`${id}.data`, `${id}.json`]);
    expect(fs.readFileSync(spool.dataPath(id), 'utf8')).toBe('copied bytes\n');
    expect(fs.statSync(spool.dataPath(id)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(fs.readFileSync(path.join(dir, `${id}.json`), 'utf8'))).toEqual(meta);
    expect(spool.recover().entries).toEqual([meta]);
  });
});

describe('newTransferId', () => {
  it('gives unique ids of one shape, far past one batch of random bytes', () => {
    const ids = Array.from({ length: 3000 }, () => newTransferId());
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^[0-9a-z]+-[0-9a-f]{16}$/);
  });
});
