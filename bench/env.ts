import type pg from 'pg';
import type { BenchSql } from './database.js';

/** What every scenario gets from run.ts. */
export interface BenchEnv {
  url: string;
  /** The run's own schema: the library's table and the bench's tables live in it. */
  schema: string;
  sql: BenchSql;
  /** A raw pg pool of two connections: the floors and the old way run on it. */
  raw: pg.Pool;
  /**
   * A sample count scaled for this run: the count itself normally, a tenth of it (at least
   * `least`) with BENCH_QUICK=1, which is for trying the bench out, not for results.
   */
  scaled(samples: number, least?: number): number;
  /** A progress line on stderr, so that stdout carries only the markdown. */
  progress(message: string): void;
}
