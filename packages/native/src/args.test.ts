// Every function gets the same bad inputs (the noble-post-quantum errors.test
// idea): a wrong type is a TypeError, a bad number or string a RangeError,
// each naming the function and the argument, and none reaches a syscall or
// crashes the process. Template values are type-valid but harmless: fds that
// are not open, paths in a directory that does not exist.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as native from '@sluice/native';

type Kind = 'fd' | 'int' | 'str' | 'bytes' | 'fn';
type Spec = { fn: keyof native.NativeBinding; args: Array<[name: string, kind: Kind, valid: unknown]> };

const NOFD = 2 ** 31 - 1; // a valid int32 that is never an open descriptor
const NOPATH = '/nonexistent-sluice-dir/x';

const specs: Spec[] = [
  { fn: 'listen', args: [['path', 'str', NOPATH], ['mode', 'int', 0o600], ['backlog', 'int', 4]] },
  { fn: 'socketInfo', args: [['fd', 'fd', NOFD]] },
  { fn: 'setNonblockCloexec', args: [['fd', 'fd', NOFD]] },
  { fn: 'relisten', args: [['fd', 'fd', NOFD], ['backlog', 'int', 4]] },
  { fn: 'connect', args: [['path', 'str', NOPATH]] },
  { fn: 'connectStream', args: [['path', 'str', NOPATH]] },
  { fn: 'accept', args: [['fd', 'fd', NOFD]] },
  { fn: 'send', args: [['fd', 'fd', NOFD], ['data', 'bytes', Buffer.from('x')], ['passFd', 'int', -1]] },
  { fn: 'recv', args: [['fd', 'fd', NOFD], ['maxBytes', 'int', 16]] },
  { fn: 'peerCred', args: [['fd', 'fd', NOFD]] },
  { fn: 'memfdCreate', args: [['name', 'str', 'x']] },
  { fn: 'addSeals', args: [['fd', 'fd', NOFD], ['seals', 'int', 1]] },
  { fn: 'getSeals', args: [['fd', 'fd', NOFD]] },
  { fn: 'fdFlags', args: [['fd', 'fd', NOFD]] },
  { fn: 'setFdFlags', args: [['fd', 'fd', NOFD], ['flags', 'int', 0]] },
  { fn: 'setLease', args: [['fd', 'fd', NOFD], ['type', 'int', native.constants.F_UNLCK]] },
  { fn: 'alignedBuffer', args: [['bytes', 'int', 4096]] },
  { fn: 'getLease', args: [['fd', 'fd', NOFD]] },
  { fn: 'linkFd', args: [['fd', 'fd', NOFD], ['path', 'str', NOPATH]] },
  { fn: 'poll', args: [['fd', 'fd', NOFD], ['callback', 'fn', () => {}]] },
  { fn: 'setDumpable', args: [['value', 'int', 1]] },
];

// Wrong JS types: TypeError for every kind of argument.
const wrongTypes: Array<[string, unknown]> = [
  ['undefined', undefined],
  ['null', null],
  ['boolean', true],
  ['object', {}],
  ['array', [1]],
  ['bigint', 3n],
  ['symbol', Symbol('s')],
  ['Number object', new Number(3)],
];
const wrongTypesByKind: Record<Kind, Array<[string, unknown]>> = {
  fd: [['numeric string', '3'], ['function', () => 3]],
  int: [['numeric string', '3'], ['function', () => 3]],
  str: [['number', 42], ['String object', new String('x')], ['Buffer', Buffer.from('x')]],
  bytes: [['string', 'abc'], ['ArrayBuffer', new ArrayBuffer(4)], ['Int8Array', new Int8Array(4)],
    ['Uint16Array', new Uint16Array(4)], ['DataView', new DataView(new ArrayBuffer(4))], ['number', 1]],
  fn: [['string', 'f'], ['number', 1]],
};
// Right type, wrong value: RangeError.
const wrongValuesByKind: Record<Kind, Array<[string, unknown]>> = {
  fd: [['NaN', NaN], ['Infinity', Infinity], ['-Infinity', -Infinity], ['fraction', 1.5], ['-1', -1],
    ['2^31', 2 ** 31], ['2^53', 2 ** 53], ['-0.5', -0.5]],
  int: [['NaN', NaN], ['Infinity', Infinity], ['fraction', 0.5], ['-2', -2], ['2^53', 2 ** 53]],
  str: [['empty', ''], ['too long', 'a'.repeat(5000)]],
  bytes: [],
  fn: [],
};

const cases: Array<[string, string, unknown[], typeof TypeError | typeof RangeError, string]> = [];
for (const { fn, args } of specs) {
  const valid = args.map(([, , v]) => v);
  args.forEach(([name, kind], i) => {
    const at = (v: unknown) => valid.map((x, j) => (j === i ? v : x));
    for (const [label, v] of [...wrongTypes, ...wrongTypesByKind[kind]])
      cases.push([fn, `${name} = ${label}`, at(v), TypeError, name]);
    for (const [label, v] of wrongValuesByKind[kind]) cases.push([fn, `${name} = ${label}`, at(v), RangeError, name]);
  });
}

describe('bad arguments never reach a syscall', () => {
  it.each(cases)('%s(%s)', (fn, _label, args, ErrorType, argName) => {
    const f = native.native[fn as Spec['fn']] as (...a: unknown[]) => unknown;
    let err: any;
    try {
      f(...args);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ErrorType);
    expect(err.message).toContain(`${fn}(): argument '${argName}'`);
    expect(err.code).toBe(ErrorType === TypeError ? 'ERR_INVALID_ARG_TYPE' : 'ERR_OUT_OF_RANGE');
  });

  it.each(specs.map((s) => s.fn))('%s() with no arguments is a TypeError', (fn) => {
    expect(() => (native.native[fn] as () => unknown)()).toThrow(TypeError);
  });

  it('strings with NUL bytes are refused (TypeError), never truncated', () => {
    expect(() => native.connect('/tmp/a\0b')).toThrow(TypeError);
    expect(() => native.memfdCreate('a\0b')).toThrow(TypeError);
    expect(() => native.linkFd(NOFD, '/tmp/a\0b')).toThrow(TypeError);
  });

  it('socket paths are limited to sun_path (107 bytes, counted in UTF-8)', () => {
    expect(() => native.connect('/' + 'a'.repeat(107))).toThrow(RangeError);
    expect(() => native.connect('/' + 'é'.repeat(54))).toThrow(RangeError); // 109 bytes
    expect(() => native.connect('/' + 'a'.repeat(106))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });

  it('range checks that are not about types', () => {
    expect(() => native.listen(NOPATH, 0o1777, 1)).toThrow(RangeError); // no sticky/setuid bits
    expect(() => native.recv(NOFD, 64 * 1024 * 1024 + 1)).toThrow(RangeError);
    expect(() => native.setLease(NOFD, 1 /* F_WRLCK */)).toThrow(RangeError);
    expect(() => native.send(NOFD, Buffer.alloc(0), -2)).toThrow(RangeError);
  });

  it('Poller.start validates its events', () => {
    const sock = `/tmp/sluice-args-${process.pid}.sock`;
    const fd = native.listen(sock, 0o600, 1);
    try {
      const p = native.poll(fd, () => {});
      expect(() => p.start('1' as any)).toThrow(TypeError);
      expect(() => p.start(0)).toThrow(RangeError);
      expect(() => p.start(8)).toThrow(RangeError);
      expect(() => p.start(1.5)).toThrow(RangeError);
      p.close();
    } finally {
      fs.closeSync(fd);
      fs.unlinkSync(sock);
    }
  });
});
