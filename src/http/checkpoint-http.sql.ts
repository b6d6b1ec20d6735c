// The HTTP module's read statements. Same rules as checkpoint.sql.ts: the schema name is
// validated and quoted, every value is a bound parameter.
import { CHECKPOINT_STATES } from '../checkpoint.constants.js';
import type { Query } from '../checkpoint.sql.js';
import { assertSchemaName } from '../checkpoint.validation.js';

/** Filters of the key list; null means "any". */
export interface KeyFilter {
  state: string | null;
  runId: string | null;
  queue: string | null;
  /** A substring of the key, or the exact run id or pg-boss job id. */
  search: string | null;
}

const { running } = CHECKPOINT_STATES;

/** Counts per state stop here: past it the page shows "10,000+". */
export const COUNT_CAP = 10_000;

/** Builds the HTTP module's statements for one schema. */
export function checkpointHttpSql(schema: string) {
  assertSchemaName(schema);
  const table = `"${schema}"."checkpoint"`;
  const q = (text: string, values: unknown[] = []): Query => ({ text, values });
  // What the page shows of a run besides the library's Run: its chunks per state, the highest
  // attempt, and the rate of its running chunks (their own rates added up).
  const chunkCounts = `run_id,
    count(*) FILTER (WHERE state = 'pending')::int AS pending,
    count(*) FILTER (WHERE state = 'running')::int AS running,
    count(*) FILTER (WHERE state = 'paused')::int AS paused,
    count(*) FILTER (WHERE state = 'completed')::int AS completed,
    count(*) FILTER (WHERE state = 'failed')::int AS failed,
    count(*) FILTER (WHERE state = 'cancelled')::int AS cancelled,
    count(*) FILTER (WHERE state = 'released')::int AS released,
    max(attempt) AS attempt,
    COALESCE(sum(CASE WHEN state = '${running}' AND updated_at > attempt_started_at
      THEN (current_index - attempt_start_index)
           / EXTRACT(EPOCH FROM updated_at - attempt_started_at) END), 0)::float8
      AS items_per_second`;

  return {
    /**
     * A page of keys, newest first (created_at, then key), after the position of an earlier
     * page. Reads `limit + 1` rows (the extra one says that more follow); an index of migration 9
     * serves the order at any depth. No total: counting 10 million rows is a scan.
     */
    listKeys: (filter: KeyFilter, limit: number, after: readonly [string, string] | null) => {
      const values: unknown[] = [];
      const where: string[] = [];
      if (filter.state !== null) where.push(`state = $${values.push(filter.state)}`);
      if (filter.runId !== null) where.push(`run_id = $${values.push(filter.runId)}`);
      if (filter.queue !== null) where.push(`queue = $${values.push(filter.queue)}`);
      if (filter.search !== null) {
        const n = values.push(filter.search);
        where.push(`(strpos(key, $${n}) > 0 OR run_id = $${n} OR job_id = $${n})`);
      }
      if (after !== null) {
        where.push(
          `(created_at, key) < ($${values.push(after[0])}::timestamptz, $${values.push(after[1])})`,
        );
      }
      return q(
        `SELECT *, created_at::text AS page_at FROM ${table}
         ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`}
         ORDER BY created_at DESC, key DESC LIMIT $${values.push(limit + 1)}`,
        values,
      );
    },
    keys: (keys: string[]) => q(`SELECT * FROM ${table} WHERE key = ANY($1::text[])`, [keys]),
    /** Chunks per state of these runs (the run_id index): one row per run that has chunks. */
    chunkCounts: (runIds: string[]) =>
      q(`SELECT ${chunkCounts} FROM ${table} WHERE run_id = ANY($1::text[]) GROUP BY run_id`, [
        runIds,
      ]),
    /**
     * A run's throughput over its life, in `buckets` equal slices from its first attempt's start
     * to its last change. Each chunk's items of its last attempt are spread evenly over that
     * attempt (attempt_started_at to updated_at), the items of its earlier attempts over the time
     * before it (from the chunk's creation): the store keeps no finer history, so a slice's rate
     * is the sum of the chunks' average rates while they overlap it. One read of the run's chunks
     * (the run_id index); at most `buckets` rows.
     */
    throughput: (runId: string, buckets: number) =>
      q(
        `WITH chunk AS (
           SELECT created_at, attempt_started_at, updated_at, current_index, attempt_start_index
           FROM ${table} WHERE run_id = $1 AND attempt_started_at IS NOT NULL
         ), seg AS (
           SELECT attempt_started_at AS s, updated_at AS e,
                  (current_index - attempt_start_index)::float8 AS n FROM chunk
           UNION ALL
           SELECT created_at, attempt_started_at, attempt_start_index::float8 FROM chunk
           WHERE attempt_start_index > 0
         ), live AS (SELECT * FROM seg WHERE e > s AND n > 0),
         span AS (SELECT min(s) AS a, max(e) AS b FROM live),
         slice AS (
           SELECT i, a + (b - a) * i / $2::int AS bs, a + (b - a) * (i + 1) / $2::int AS be
           FROM span, generate_series(0, $2::int - 1) AS i WHERE b > a
         )
         SELECT slice.i, slice.bs AS starts_at, slice.be AS ends_at,
           COALESCE(sum(live.n * EXTRACT(EPOCH FROM LEAST(live.e, slice.be) - GREATEST(live.s, slice.bs))
             / EXTRACT(EPOCH FROM live.e - live.s)), 0)::float8
             / EXTRACT(EPOCH FROM slice.be - slice.bs)::float8 AS items_per_second
         FROM slice LEFT JOIN live ON live.s < slice.be AND live.e > slice.bs
         GROUP BY slice.i, slice.bs, slice.be ORDER BY slice.i`,
        [runId, buckets],
      ),
    /**
     * Keys per state, each counted up to COUNT_CAP + 1 rows of the (state, created_at, key)
     * index: a state with more reads as "more than COUNT_CAP" and costs no more than that.
     */
    counts: () =>
      q(
        `SELECT s.state, (SELECT count(*)::int FROM (SELECT 1 FROM ${table} c
           WHERE c.state = s.state LIMIT ${COUNT_CAP + 1}) l) AS count
         FROM unnest($1::text[]) AS s(state)`,
        [Object.values(CHECKPOINT_STATES)],
      ),
  };
}

export type CheckpointHttpSql = ReturnType<typeof checkpointHttpSql>;
