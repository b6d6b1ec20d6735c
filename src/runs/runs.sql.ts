// Every SQL statement of runs. Same rules as checkpoint.sql.ts: the schema is validated and
// quoted, values are bound parameters, times are clock_timestamp().
import { CHECKPOINT_STATES, RUN_STATES, type RunState } from '../checkpoint.constants.js';
import type { Query } from '../checkpoint.sql.js';
import { assertSchemaName } from '../checkpoint.validation.js';

const { pending, completed, cancelled, failed } = CHECKPOINT_STATES;
/** The states a run row holds while its chunks may still move. */
const OPEN: readonly RunState[] = [RUN_STATES.created, RUN_STATES.running];
const open = OPEN.map((state) => `'${state}'`).join(', ');

/** Builds the statements of runs for one schema. */
export function runsSql(schema: string) {
  assertSchemaName(schema);
  const run = `"${schema}"."run"`;
  const checkpoint = `"${schema}"."checkpoint"`;
  const worker = `"${schema}"."run_worker"`;
  const q = (text: string, values: unknown[] = []): Query => ({ text, values });
  // A run's chunk counts are kept on its row (migration 8's trigger moves them in the statement
  // that changes a chunk), with the items of its chunks that are done moving; the items of the
  // others, which every advance moves, are summed over them alone (a partial index of migration
  // 9): a finished run reads no chunk, a list reads its page's runs and nothing else.
  const summary = (boss: string | null) => `SELECT r.*,
           ${runState(boss)} AS run_state,
           (r.items_settled + s.items_open)::bigint AS items_done,
           (r.skipped_settled + s.skipped_open)::bigint AS items_skipped,
           r.chunks_completed AS chunks_done,
           coalesce(greatest(r.settled_at, s.last_update), r.updated_at) AS last_update,
           r.created_at::text AS page_at
         FROM ${run} r CROSS JOIN LATERAL (
           SELECT coalesce(sum(c.current_index), 0) AS items_open,
                  coalesce(sum(c.skipped_items), 0) AS skipped_open,
                  max(c.updated_at) AS last_update
           FROM ${checkpoint} c
           WHERE c.run_id = r.id AND c.state NOT IN ('${completed}', '${cancelled}', '${failed}')) s`;
  /**
   * The one definition of a run's state, read by get, list, its filters and watch. The row holds
   * what was decided (created, completed, cancelled, a direct run's failure); an open run is
   * `running` once a chunk was claimed, and `failed` once every chunk settled, some failed, and
   * no failed chunk's pg-boss job will run again (none `created`, `retry` or `active`). The job
   * table is read only for runs whose counts say every chunk settled with a failure, by its
   * primary key (name, id).
   */
  const runState = (boss: string | null) => {
    const settledWithFailure = `r.state IN (${open}) AND r.chunks_failed > 0
           AND r.chunks_completed + r.chunks_failed + r.chunks_cancelled = r.chunk_count`;
    const willRunAgain =
      boss === null
        ? 'false'
        : `EXISTS (SELECT 1 FROM ${checkpoint} fc JOIN ${boss}.job j
                     ON j.name = fc.queue AND j.id = fc.job_id::uuid
                   WHERE fc.run_id = r.id AND fc.state = '${failed}'
                     AND j.state IN ('created', 'retry', 'active'))`;
    return `CASE WHEN ${settledWithFailure} AND NOT ${willRunAgain} THEN '${RUN_STATES.failed}'
           WHEN r.state = '${RUN_STATES.created}' AND r.chunks_started > 0 THEN '${RUN_STATES.running}'
           ELSE r.state END`;
  };

  return {
    /** The run row; no row back when the id exists (then `start` sends nothing). */
    insertRun: (
      id: string,
      queue: string,
      mode: string,
      totalItems: number,
      chunkCount: number,
      chunkSize: number,
      options: string | null,
      metadata: string | null,
    ) =>
      q(
        `INSERT INTO ${run} (id, queue, state, mode, total_items, chunk_count, chunk_size, options, metadata)
         VALUES ($1, $2, '${RUN_STATES.created}', $3, $4, $5, $6, $7::jsonb, $8::jsonb)
         ON CONFLICT (id) DO NOTHING
         RETURNING id`,
        [id, queue, mode, totalItems, chunkCount, chunkSize, options, metadata],
      ),
    /** What an existing run was started with (a second start compares it). */
    startedWith: (id: string) => q(`SELECT queue, options FROM ${run} WHERE id = $1`, [id]),
    /** Every chunk's checkpoint row, `pending` until its job is claimed: one statement. */
    insertChunks: (
      runId: string,
      queue: string,
      keys: string[],
      jobIds: string[],
      totals: number[],
    ) =>
      q(
        `INSERT INTO ${checkpoint} (key, state, queue, job_id, run_id, run_chunk, total_items)
         SELECT c.key, '${pending}', $2, c.job_id, $1, c.ord::integer - 1, c.total
         FROM unnest($3::text[], $4::text[], $5::bigint[]) WITH ORDINALITY AS c(key, job_id, total, ord)`,
        [runId, queue, keys, jobIds, totals],
      ),
    /**
     * A run with its progress summed over its chunks' rows, in one statement (one row per chunk
     * through the run_id index; no item is read).
     */
    progress: (id: string, boss: string | null) => q(`${summary(boss)} WHERE r.id = $1`, [id]),
    /**
     * A page of runs, newest first (created_at, then id), after the position of an earlier page,
     * of one state as `progress` reads it: the row's state narrows the rows first (a run reads
     * `running` or `failed` while its row says created or running). Reads `limit + 1` rows (the
     * extra one says that more follow), through an index of migration 9 at any depth.
     */
    list: (
      queue: string | null,
      state: RunState | null,
      limit: number,
      after: readonly [string, string] | null,
      boss: string | null,
    ) => {
      const values: unknown[] = [];
      const where: string[] = [];
      if (queue !== null) where.push(`r.queue = $${values.push(queue)}`);
      if (state !== null) {
        const stored =
          state === RUN_STATES.failed ? [...OPEN, state] : OPEN.includes(state) ? OPEN : [state];
        where.push(`r.state IN (${stored.map((s) => `'${s}'`).join(', ')})`);
        if (stored.length > 1) where.push(`${runState(boss)} = $${values.push(state)}`);
      }
      if (after !== null) {
        where.push(
          `(r.created_at, r.id) < ($${values.push(after[0])}::timestamptz, $${values.push(after[1])})`,
        );
      }
      return q(
        `${summary(boss)} ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`}
         ORDER BY r.created_at DESC, r.id DESC LIMIT $${values.push(limit + 1)}`,
        values,
      );
    },
    /** The chunks of a run in order, with their results. */
    chunks: (id: string) =>
      q(
        `SELECT key, job_id, run_chunk, state, current_index, total_items, attempt, hand_backs, result, error
         FROM ${checkpoint} WHERE run_id = $1 ORDER BY run_chunk`,
        [id],
      ),

    // --- completion ---------------------------------------------------------------------------
    /**
     * Taken before the completion check by every transaction that completes a chunk: under READ
     * COMMITTED, two last chunks committing together would each miss the other's completion;
     * with the run row locked first, the second one's check runs after the first committed.
     */
    lockRun: (id: string) => q(`SELECT state FROM ${run} WHERE id = $1 FOR UPDATE`, [id]),
    /**
     * Completes the run when no chunk is left unfinished, once: only an open run flips, and the
     * per-item time of its chunks' last attempts is stored for the planner.
     */
    finish: (id: string) =>
      q(
        `UPDATE ${run} r SET state = '${RUN_STATES.completed}', completed_at = clock_timestamp(),
           updated_at = clock_timestamp(),
           -- A run completed again after a redrive keeps the per-item time of its first
           -- completion: the redrive's attempts ran a few ledger items, not the chunks.
           item_ms = coalesce(r.item_ms, (
             SELECT sum(extract(epoch FROM (c.updated_at - c.attempt_started_at)) * 1000)
                    / nullif(sum(c.current_index - c.attempt_start_index), 0)
             FROM ${checkpoint} c WHERE c.run_id = $1 AND c.attempt_started_at IS NOT NULL))
         WHERE r.id = $1 AND r.state IN (${open})
           AND NOT EXISTS (
             SELECT 1 FROM ${checkpoint} c WHERE c.run_id = $1 AND c.state <> '${completed}')
         RETURNING r.id`,
        [id],
      ),
    /** Open runs of these queues whose chunks are all completed (a completer died between). */
    unfinished: (queues: string[]) =>
      q(
        `SELECT r.id FROM ${run} r
         WHERE r.state IN (${open}) AND r.queue = ANY($1::text[])
           AND NOT EXISTS (
             SELECT 1 FROM ${checkpoint} c WHERE c.run_id = r.id AND c.state <> '${completed}')
         LIMIT 100`,
        [queues],
      ),
    /** Completed runs of these queues whose completion hook has not run yet. */
    hookDue: (queues: string[]) =>
      q(
        `SELECT id FROM ${run}
         WHERE state = '${RUN_STATES.completed}' AND completed_hook_at IS NULL
           AND queue = ANY($1::text[])
         ORDER BY completed_at LIMIT 100`,
        [queues],
      ),
    /**
     * Marks the hook of a run as run, inside the hook's transaction: if the process dies before
     * it commits, the mark rolls back with the hook's writes and another process runs it. A run
     * whose hook another process is running right now is skipped, not waited for.
     */
    claimHook: (id: string) =>
      q(
        `UPDATE ${run} SET completed_hook_at = clock_timestamp()
         WHERE id = (SELECT id FROM ${run}
                     WHERE id = $1 AND state = '${RUN_STATES.completed}' AND completed_hook_at IS NULL
                     FOR UPDATE SKIP LOCKED)
         RETURNING id`,
        [id],
      ),

    // --- cancel -------------------------------------------------------------------------------
    /** The pg-boss jobs of a run's unfinished chunks (cancel cancels them). */
    openChunks: (id: string) =>
      q(
        `SELECT queue, job_id FROM ${checkpoint}
         WHERE run_id = $1 AND job_id IS NOT NULL AND state NOT IN ('${completed}', '${cancelled}')`,
        [id],
      ),
    cancelRun: (id: string) =>
      q(
        `UPDATE ${run} SET state = '${RUN_STATES.cancelled}', updated_at = clock_timestamp()
         WHERE id = $1 AND state IN (${open}, '${RUN_STATES.failed}')
         RETURNING id`,
        [id],
      ),
    /** A direct run whose inline attempt threw. */
    failRun: (id: string) =>
      q(
        `UPDATE ${run} SET state = '${RUN_STATES.failed}', updated_at = clock_timestamp()
         WHERE id = $1 AND state IN (${open})`,
        [id],
      ),
    /** A direct run started again after it failed. */
    reopenRun: (id: string) =>
      q(
        `UPDATE ${run} SET state = '${RUN_STATES.created}', updated_at = clock_timestamp()
         WHERE id = $1 AND state = '${RUN_STATES.failed}'`,
        [id],
      ),

    // --- planning -----------------------------------------------------------------------------
    /** This process works these queues: one row each, renewed by the heartbeat. */
    beat: (process: string, queues: string[]) =>
      q(
        `INSERT INTO ${worker} (process, queue, beat_at)
         SELECT $1, unnest($2::text[]), clock_timestamp()
         ON CONFLICT (queue, process) DO UPDATE SET beat_at = EXCLUDED.beat_at`,
        [process, queues],
      ),
    /** Forgets this process (shutdown), and rows of processes silent for a long time. */
    unregister: (process: string) =>
      q(
        `DELETE FROM ${worker}
         WHERE process = $1 OR beat_at < clock_timestamp() - interval '1 day'`,
        [process],
      ),
    /** Workers alive on a queue, and whether any was ever seen on it. */
    workers: (queue: string, aliveSeconds: number) =>
      q(
        `SELECT count(*) FILTER (WHERE beat_at > clock_timestamp() - make_interval(secs => $2))::int AS alive,
                count(*)::int AS known
         FROM ${worker} WHERE queue = $1`,
        [queue, aliveSeconds],
      ),
    /** The per-item time measured on the queue's last completed runs. */
    measured: (queue: string) =>
      q(
        `SELECT avg(item_ms)::float8 AS item_ms, count(*)::int AS runs FROM (
           SELECT item_ms FROM ${run} WHERE queue = $1 AND item_ms IS NOT NULL
           ORDER BY completed_at DESC LIMIT 5) recent`,
        [queue],
      ),
  };
}

export type RunsSql = ReturnType<typeof runsSql>;
