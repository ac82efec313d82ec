// The pure checks of `sluice uploader`: names, key lines, the directory templates.
// test/deploy/uploaders.test.ts runs the command itself, as root, on real accounts.
import { describe, expect, it } from 'vitest';
import { keyLine, layoutOf, nameProblem, Refusal } from './uploader.js';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ1example0example0example0example0examp alice@lab';

describe('nameProblem', () => {
  it.each(['alice', 'bob_2', '_svc', 'a', 'x-y', 'a'.repeat(32)])('accepts %s', (n) => expect(nameProblem(n)).toBeNull());
  it.each([
    ['', 'not a valid'],
    ['Alice', 'not a valid'],
    ['1abc', 'not a valid'],
    ['-x', 'not a valid'],
    ['a'.repeat(33), 'not a valid'],
    ['al ice', 'not a valid'],
    ['../etc', 'not a valid'],
    ['alice$', 'not a valid'],
    ['sluice-drop', "station's own"],
    ['sluice', "station's own"],
    ['sluiceadmin', "station's own"],
  ])('refuses %j', (n, why) => expect(nameProblem(n)).toContain(why));
});

describe('keyLine', () => {
  it('puts "restrict" first: before the key type, or before the options', () => {
    expect(keyLine(`${KEY}\n`)).toBe(`restrict ${KEY}`);
    expect(keyLine(`from="10.0.0.0/8" ${KEY}`)).toBe(`restrict,from="10.0.0.0/8" ${KEY}`);
    expect(keyLine(`\n${KEY}\r\n\n`)).toBe(`restrict ${KEY}`);
  });
  it.each([
    ['', 'exactly one public key line, not 0'],
    [`${KEY}\n${KEY}\n`, 'exactly one public key line, not 2'],
    ['-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\n', 'private key'],
    [`${KEY}\0`, 'NUL'],
    ['# just a comment\n', 'only a comment'],
  ])('refuses %j', (text, why) => {
    expect(() => keyLine(text)).toThrow(Refusal);
    expect(() => keyLine(text)).toThrow(why);
  });
});

describe('layoutOf', () => {
  it('finds BASE and the two directories of BASE/{name}/DIR', () => {
    expect(layoutOf('/var/lib/sluice/uploaders/{name}/inbox', '/var/lib/sluice/uploaders/{name}/results')).toEqual({
      base: '/var/lib/sluice/uploaders',
      inboxDir: 'inbox',
      resultsDir: 'results',
    });
  });
  it.each([
    ['relative/{name}/inbox', '/u/{name}/results', 'absolute'],
    ['/u/{name}/../inbox', '/u/{name}/results', 'normalized'],
    ['/u/inbox', '/u/{name}/results', '{name} once'],
    ['/u/{name}/{name}/inbox', '/u/{name}/results', '{name} once'],
    ['/u/x{name}/inbox', '/u/{name}/results', '{name} once'],
    ['/u/inbox/{name}', '/u/results/{name}', 'BASE/{name}/DIR'],
    ['/u/{name}/in/box', '/u/{name}/results', 'BASE/{name}/DIR'],
    ['/u/{name}/inbox', '/v/{name}/results', 'share'],
    ['/u/{name}/inbox', '/u/{name}/inbox', 'different'],
  ])('refuses %s and %s', (i, r, why) => expect(() => layoutOf(i, r)).toThrow(why));
});
