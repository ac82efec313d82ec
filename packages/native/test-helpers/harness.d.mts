// Types for harness.mjs, so the .test.ts files type-check against it.
import type { ChildProcess } from 'node:child_process';

export const HELPERS: string;
export const PYTHON: string;
export const NOBODY: number;
export const CAN_SWITCH_UID: boolean;

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}
export interface Child {
  proc: ChildProcess;
  done: Promise<ChildResult>;
  /** The first line the child prints on stdout. */
  line(): Promise<string>;
}
export interface ChildOptions {
  /** Run under uid/gid 65534 via setpriv when we are root. */
  asUser?: boolean;
  stdin?: 'ignore' | 'pipe';
}

export function tempDir(): string;
export function openFds(): number[];
export function child(argv: string[], opts?: ChildOptions): Child;
export function nodeHelper(script: string, args: string[], opts?: ChildOptions): Child;
export function lastJson(stdout: string): any;
export function waitFor(fd: number, events?: number): Promise<number>;
export function acceptOne(lfd: number, peer?: Child): Promise<number>;
