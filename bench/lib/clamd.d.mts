// Types of clamd.mjs for the TypeScript tests that build on it (test/support/clamd.ts).
import type { ChildProcess } from 'node:child_process';

export declare const CLAMD: string;
export declare const PYTHON: string;
export declare const HAVE_CLAMD: boolean;
export declare const CLAMD_START_MS: number;
export declare const CLAMD_STOP_MS: number;

export interface ClamdConfOptions {
  /** LocalSocketMode, octal as clamd.conf takes it: '600', '660'. */
  socketMode: string;
  /** MaxThreads. */
  threads: number;
  /** More clamd.conf lines, added as they are. */
  lines?: string[];
}
export declare function writeClamdConf(dir: string, opts: ClamdConfOptions): { socket: string; conf: string; db: string };

export declare function ask(socketPath: string, command: string, timeoutMs?: number): Promise<string>;

export declare class ClamdProcess {
  static start(conf: string, socket: string): Promise<ClamdProcess>;
  private constructor(child: ChildProcess);
  readonly child: ChildProcess;
  readonly output: string;
  get pid(): number | undefined;
  signal(sig: NodeJS.Signals): void;
  stop(): Promise<void>;
}

export interface FildesRate {
  seconds: number;
  files: number;
  bytes: number;
  mbps: number;
}
export declare class BenchClamd {
  static start(dir: string, opts?: { threads?: number }): Promise<BenchClamd>;
  private constructor(dir: string, socket: string, clamd: ClamdProcess);
  readonly dir: string;
  readonly socket: string;
  readonly process: ClamdProcess;
  version: string;
  get pid(): number | undefined;
  fildesRate(paths: string[], concurrency: number): Promise<FildesRate>;
  stop(): Promise<void>;
}
