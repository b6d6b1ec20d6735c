import { CHECKPOINT_STATES } from '../checkpoint.constants.js';
import { ASYNC_COMMIT, type StatementKit } from './statement-kit.js';

const { running, completed, failed, cancelled } = CHECKPOINT_STATES;

/** The seed's operations on whole rows (save, find, remove) and listing and purging keys. */
export function keysSql({ schema, table, q, prepared }: StatementKit) {
  return {
    // --- the original service's operations ----------------------------------------------------
    /**
     * One upsert (prepared: legacy callers save once per batch); the checkpoint is replaced whole.
     * `state = c.state` changes nothing but names the column, so that the run-count trigger
     * (migration 15) follows the position of a finished run chunk saved this way.
     */
    save: prepared(
      'save',
      `INSERT INTO ${table} AS c (key, state, current_batch_index, current_index,
                                    processed_batches, total_batches, intermediate_result, metadata)
         VALUES ($1, '${running}', $2, $3, $4, $5, $6::jsonb, $7::jsonb)
         ON CONFLICT (key) DO UPDATE SET
           state = c.state,
           current_batch_index = EXCLUDED.current_batch_index,
           current_index = EXCLUDED.current_index,
           processed_batches = EXCLUDED.processed_batches,
           total_batches = EXCLUDED.total_batches,
           intermediate_result = EXCLUDED.intermediate_result,
           metadata = EXCLUDED.metadata,
           updated_at = clock_timestamp()`,
      (
        key: string,
        currentBatchIndex: number,
        currentIndex: number,
        processedBatches: number,
        totalBatches: number,
        intermediateResult: string | null,
        metadata: string | null,
      ) => [
        key,
        currentBatchIndex,
        currentIndex,
        processedBatches,
        totalBatches,
        intermediateResult,
        metadata,
      ],
    ),
    find: (key: string) => q(`SELECT * FROM ${table} WHERE key = $1`, [key]),
    remove: (key: string) => q(`DELETE FROM ${table} WHERE key = $1`, [key]),
    /**
     * A page of keys, newest first (created_at, then key: columns no advance writes, so that the
     * index behind it leaves advances HOT updates and a page never shifts under a running key),
     * optionally in one state, after the position of an earlier page. Reads `limit + 1` rows: the
     * extra one says that more follow. One index seek (migration 9), at any depth.
     */
    list: (state: string | null, limit: number, after: readonly [string, string] | null) => {
      const values: unknown[] = [];
      const where: string[] = [];
      if (state !== null) where.push(`state = $${values.push(state)}`);
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
    /**
     * One slice of a purge: up to `limit` keys in `state` not updated since `before`, oldest
     * first from the position `after` (the last key of the previous slice), walked on the
     * (state, created_at, key) index (a key was created before it was last updated). Keys an
     * attempt holds locked are skipped, never waited for; a key's failed items go in the same
     * statement. Keys of a run go only once the run has finished. Returns what it removed and
     * where the next slice starts (no row: nothing was left to look at).
     */
    purgeSlice: (
      state: string,
      before: Date,
      after: readonly [string, string] | null,
      limit: number,
    ) =>
      q(
        `WITH doomed AS (
           SELECT c.key, c.created_at FROM ${table} c
           WHERE c.state = $1 AND c.created_at < $2 AND c.updated_at < $2
             AND ($3::timestamptz IS NULL OR (c.created_at, c.key) > ($3::timestamptz, $4::text))
             -- A scalar subquery, not NOT EXISTS: one probe of the run's primary key per key,
             -- where an anti-join would read the whole run table on every slice.
             AND (c.run_id IS NULL OR coalesce((
               SELECT r.state IN ('${completed}', '${cancelled}', '${failed}')
               FROM "${schema}"."run" r WHERE r.id = c.run_id), true))
           ORDER BY c.created_at, c.key LIMIT $5
           FOR UPDATE OF c SKIP LOCKED
         ), items AS (
           -- = ANY(ARRAY(...)) probes the ledger's primary key per doomed key. A join with
           -- doomed is planned from the key column's skewed statistics (one key may hold most of
           -- the ledger) and became a sequential scan of the whole ledger on every slice.
           DELETE FROM "${schema}"."failed_item" f
           WHERE f.key = ANY (ARRAY(SELECT d.key FROM doomed d)) RETURNING 1
         ), keys AS (
           DELETE FROM ${table} c USING doomed d WHERE c.key = d.key RETURNING 1
         )
         SELECT (SELECT count(*) FROM keys)::int AS keys,
                (SELECT count(*) FROM items)::int AS items,
                d.created_at::text AS at, d.key, ${ASYNC_COMMIT}
         FROM doomed d ORDER BY d.created_at DESC, d.key DESC LIMIT 1`,
        [state, before, after?.[0] ?? null, after?.[1] ?? null, limit],
      ),
  };
}
