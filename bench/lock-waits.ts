// Who waits for whose locks while a statement of interest runs: sampled from pg_stat_activity
// every SAMPLE_MS, the way an operator would watch it. Section 12 watches the purge with it.
import type pg from 'pg';
import { sleep } from './harness.js';

const SAMPLE_MS = 10;

/** One statement that waited for a lock held by a watched statement, and for how long at least. */
export interface LockWait {
  query: string;
  ms: number;
}

/**
 * Samples, until `stop()`, the statements of this database that wait for a lock held by a
 * backend whose current statement matches one of `blockers` (LIKE patterns). A wait is seen from its
 * first sample to its last: it lasted that long at least, and at most SAMPLE_MS more.
 */
export function watchLockWaits(pool: pg.Pool, blockers: string[]) {
  let stopped = false;
  const waits = new Map<string, { query: string; first: number; last: number }>();
  const sampling = (async () => {
    const client = await pool.connect();
    try {
      while (!stopped) {
        const { rows } = await client.query<{ pid: number; since: string; query: string }>(
          `SELECT w.pid, w.query_start::text AS since, left(w.query, 80) AS query
             FROM pg_stat_activity w
            WHERE w.datname = current_database() AND w.wait_event_type = 'Lock'
              AND EXISTS (SELECT 1 FROM pg_stat_activity b
                           WHERE b.pid = ANY (pg_blocking_pids(w.pid)) AND b.query LIKE ANY ($1::text[]))`,
          [blockers],
        );
        const now = performance.now();
        for (const row of rows) {
          const id = `${row.pid}@${row.since}`;
          const seen = waits.get(id);
          if (seen === undefined) waits.set(id, { query: row.query, first: now, last: now });
          else seen.last = now;
        }
        await sleep(SAMPLE_MS);
      }
    } finally {
      client.release();
    }
  })();
  return {
    sampleMs: SAMPLE_MS,
    /** Stops sampling; the waits seen, longest first. */
    async stop(): Promise<LockWait[]> {
      stopped = true;
      await sampling;
      return [...waits.values()]
        .map((wait) => ({ query: wait.query, ms: wait.last - wait.first }))
        .sort((a, b) => b.ms - a.ms);
    },
  };
}
