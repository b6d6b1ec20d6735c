// The statements of the failed-item ledger. Same rules as checkpoint.sql.ts: the schema is
// validated and quoted, every value is a bound parameter. Each write is one statement that
// also updates the key's checkpoint row, fenced by the attempt's epoch: a stale attempt's write
// changes nothing (rowCount 0), neither in the ledger nor in the checkpoint.
import { CHECKPOINT_STATES, RUN_STATES } from '../checkpoint.constants.js';
import type { Query } from '../checkpoint.sql.js';
import { assertSchemaName } from '../checkpoint.validation.js';
import type { ErrorDetail } from './items.errors.js';

const { completed, released, running } = CHECKPOINT_STATES;
const { running: RUN_OPEN, completed: RUN_COMPLETED } = RUN_STATES;

/** Builds the ledger statements for one schema. */
export function itemsSql(schema: string) {
  assertSchemaName(schema);
  const table = `"${schema}"."checkpoint"`;
  const ledger = `"${schema}"."failed_item"`;
  const run = `"${schema}"."run"`;
  const q = (text: string, values: unknown[] = []): Query => ({ text, values });

  return {
    /**
     * Writes a failed item to the ledger (or, for an item already there, its new error) and, in
     * the same statement, advances the checkpoint past it. `skipped_items` grows by the rows
     * inserted, so it always equals the key's ledger rows. The owner row is locked first, so a
     * claim that bumps the epoch meanwhile leaves both tables untouched.
     */
    skip: (
      key: string,
      epoch: number,
      itemIndex: number,
      item: string | null,
      error: ErrorDetail,
      advance: {
        currentIndex: number | null;
        currentBatchIndex: number | null;
        processedBatches: number | null;
        cursor: string | null;
      },
    ) =>
      q(
        `WITH owner AS (
           SELECT key, attempt FROM ${table} WHERE key = $1 AND running_epoch = $2 FOR UPDATE
         ), written AS (
           INSERT INTO ${ledger} AS f
             (key, item_index, item, error_name, error_message, error_class, error_code, attempt, failed_at)
           SELECT key, $3, $4::jsonb, $5, $6, $11, $12::jsonb, attempt, clock_timestamp() FROM owner
           ON CONFLICT (key, item_index) DO UPDATE SET
             item = EXCLUDED.item, error_name = EXCLUDED.error_name,
             error_message = EXCLUDED.error_message, error_class = EXCLUDED.error_class,
             error_code = EXCLUDED.error_code, attempt = EXCLUDED.attempt,
             failed_at = EXCLUDED.failed_at
           RETURNING (xmax = 0) AS inserted
         )
         UPDATE ${table} SET
           current_index = COALESCE($7, current_index),
           current_batch_index = COALESCE($8, current_batch_index),
           processed_batches = COALESCE($9, processed_batches),
           cursor = COALESCE($10::jsonb, cursor),
           skipped_items = skipped_items + (SELECT count(*) FROM written WHERE inserted),
           updated_at = clock_timestamp()
         WHERE key = $1 AND running_epoch = $2`,
        [
          key,
          epoch,
          itemIndex,
          item,
          error.name,
          error.message,
          advance.currentIndex,
          advance.currentBatchIndex,
          advance.processedBatches,
          advance.cursor,
          error.className,
          error.code === null ? null : JSON.stringify(error.code),
        ],
      ),
    /** A redriven item passed: its ledger row goes, in the item's transaction. */
    passed: (key: string, epoch: number, itemIndex: number) =>
      q(
        `WITH owner AS (
           SELECT key FROM ${table} WHERE key = $1 AND running_epoch = $2 FOR UPDATE
         ), gone AS (
           DELETE FROM ${ledger} f USING owner WHERE f.key = owner.key AND f.item_index = $3
           RETURNING 1
         )
         UPDATE ${table} SET skipped_items = skipped_items - (SELECT count(*) FROM gone),
           updated_at = clock_timestamp()
         WHERE key = $1 AND running_epoch = $2`,
        [key, epoch, itemIndex],
      ),
    /** The redrive request of `key`: when it was asked, and its chosen items (null: all). */
    redriveRequest: (key: string) =>
      q(
        `SELECT redrive_requested_at::text AS at, redrive_items::text[] AS items
         FROM ${table} WHERE key = $1`,
        [key],
      ),
    /**
     * The ledger items a redrive (`request`, read by redriveRequest) still has to run: those that
     * failed before it was asked for (an item that failed again during this redrive is not tried
     * twice) and, when it named items, only those; a page at a time, after item `afterIndex`: one
     * ordered range of the primary key that stops at the page's end, however long the ledger. The
     * request's values come bound, not as subqueries: the planner guessed those filters would keep
     * a few rows, and read and sorted the rest of the ledger instead (86 ms a page 80% into a
     * million-item ledger).
     */
    redriveItems: (
      key: string,
      afterIndex: number,
      request: { at: string; items: readonly string[] | null },
      limit: number,
    ) =>
      q(
        `SELECT f.item_index, f.item FROM ${ledger} f
         WHERE f.key = $1 AND f.item_index > $2 AND f.failed_at <= $3::timestamptz
           ${request.items === null ? '' : 'AND f.item_index = ANY ($5::bigint[])'}
         ORDER BY f.item_index LIMIT $4`,
        request.items === null
          ? [key, afterIndex, request.at, limit]
          : [key, afterIndex, request.at, limit, request.items],
      ),
    /** The redrive pass is over. */
    endRedrive: (key: string, epoch: number) =>
      q(
        `UPDATE ${table} SET redrive_requested_at = NULL, redrive_items = NULL,
           updated_at = clock_timestamp()
         WHERE key = $1 AND running_epoch = $2`,
        [key, epoch],
      ),
    /**
     * Asks the next attempt of each key to run its ledger items first: all of them (`items`
     * null) or those of `items` that are in its ledger. A completed key becomes released, so
     * that the next call runs the method instead of returning the stored result. Keys with no
     * such item are left alone, and so are running keys: their attempt read its plan at its
     * claim and would complete without running the ledger. A redrive of chosen items asked while
     * another is pending adds its items to it (one of the whole ledger stays one).
     *
     * Returns each key asked, with the items it will run, its state before (`was`), its pg-boss
     * job (queue, job_id) and, for a run's chunk, its run and the run's mode: the caller sends
     * the job again in the same transaction. The rows are locked first, so two redrives of a key
     * take turns and the second sees what the first did.
     */
    requestRedrive: (key: string | null, runId: string | null, items: number[] | null = null) =>
      q(
        `WITH target AS (
           SELECT c.key, c.state, c.skipped_items FROM ${table} c
           WHERE (c.key = $1 OR ($1::text IS NULL AND c.run_id = $2))
             AND c.state <> '${running}'
           FOR UPDATE
         ), asked AS (
           SELECT t.key, t.state,
             CASE WHEN $3::bigint[] IS NULL THEN t.skipped_items
                  ELSE (SELECT count(*) FROM ${ledger} f
                        WHERE f.key = t.key AND f.item_index = ANY ($3::bigint[])) END AS items
           FROM target t
           WHERE EXISTS (SELECT 1 FROM ${ledger} f
                         WHERE f.key = t.key
                           AND ($3::bigint[] IS NULL OR f.item_index = ANY ($3::bigint[])))
         )
         UPDATE ${table} c SET redrive_requested_at = clock_timestamp(),
           redrive_items = CASE
             WHEN $3::bigint[] IS NULL THEN NULL
             WHEN c.redrive_requested_at IS NULL THEN $3::bigint[]
             WHEN c.redrive_items IS NULL THEN NULL
             ELSE ARRAY(SELECT DISTINCT i FROM unnest(c.redrive_items || $3::bigint[]) i ORDER BY i)
           END,
           state = CASE WHEN c.state = '${completed}' THEN '${released}' ELSE c.state END,
           updated_at = clock_timestamp()
         FROM asked a
         WHERE c.key = a.key
         RETURNING c.key, a.items::bigint AS items, a.state AS was, c.queue, c.job_id, c.run_id, c.hand_backs,
           (SELECT r.mode FROM ${run} r WHERE r.id = c.run_id) AS run_mode`,
        [key, runId, items],
      ),
    /**
     * A completed run whose chunks a redrive sent again reads `running` until they are done
     * (the chunk that completes last completes it again; its completion hook, once run, does not
     * run again). A run in any other state is left as it is: an open one reads its state from
     * its chunks, a cancelled one stays cancelled.
     */
    /** The key's job was sent again: a new job, whose pickups no hand-back preceded yet. */
    jobSentAgain: (key: string) => q(`UPDATE ${table} SET hand_backs = 0 WHERE key = $1`, [key]),
    reopenRuns: (runIds: string[]) =>
      q(
        `UPDATE ${run} SET state = '${RUN_OPEN}', completed_at = NULL, updated_at = clock_timestamp()
         WHERE id = ANY ($1::text[]) AND state = '${RUN_COMPLETED}'
         RETURNING id`,
        [runIds],
      ),
    /**
     * A page of the ledger of a key, in item order, after item `after[1]` (of key `after[0]`):
     * one range of the primary key. Reads `limit + 1` rows: the extra one says that more follow.
     */
    listOfKey: (key: string, after: readonly [string, number] | null, limit: number) =>
      q(
        `SELECT f.* FROM ${ledger} f WHERE f.key = $1 AND f.item_index > $2
         ORDER BY f.item_index LIMIT $3`,
        [key, after === null ? -1 : after[1], limit + 1],
      ),
    /**
     * A page of the ledger of every chunk of a run, in key and item order: the run's chunk keys
     * from the position on (the run_id index), and for each a range of the primary key, stopping
     * as soon as the page is full. Reads `limit + 1` rows: the extra one says that more follow.
     */
    listOfRun: (runId: string, after: readonly [string, number] | null, limit: number) =>
      q(
        `SELECT f.* FROM (
           SELECT key FROM ${table} WHERE run_id = $1 AND key >= $2 ORDER BY key
         ) c CROSS JOIN LATERAL (
           SELECT * FROM ${ledger} f
           WHERE f.key = c.key AND (f.key > $2 OR f.item_index > $3)
           ORDER BY f.item_index LIMIT $4
         ) f
         ORDER BY f.key, f.item_index LIMIT $4`,
        [runId, after === null ? '' : after[0], after === null ? -1 : after[1], limit + 1],
      ),
  };
}

export type ItemsSql = ReturnType<typeof itemsSql>;
