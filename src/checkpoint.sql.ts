// Every SQL statement of the library. Nothing else builds SQL: the schema name is validated
// against IDENTIFIER_PATTERN and quoted here, and every value is a bound parameter.
// Times are clock_timestamp(), not now(): now() is the start of the transaction, and a batch's
// transaction starts before its work does, so progress rates would be wrong.
import { CHECKPOINT_CONTROLS, CHECKPOINT_STATES } from './checkpoint.constants.js';
import { assertSchemaName } from './checkpoint.validation.js';

/** A statement and its bound values. */
export interface Query {
  text: string;
  values: unknown[];
  /**
   * Set on the statements of the batch path: they go out as named (prepared) statements, so
   * that PostgreSQL parses and plans them once per connection instead of on every batch.
   */
  name?: string;
}

const { running, released, paused, completed, failed, cancelled } = CHECKPOINT_STATES;
const { pause, cancel } = CHECKPOINT_CONTROLS;

/** Builds the statements for one schema. */
export function checkpointSql(schema: string) {
  assertSchemaName(schema);
  const table = `"${schema}"."checkpoint"`;
  const lockSpace = `nestjs-checkpoint:${schema}:`;
  const channel = `${schema}_checkpoint`;
  const controlChannel = `${schema}_checkpoint_control`;
  // Whether any session holds the lease of the row's key (see orphans()).
  const leaseHeld = (keyColumn: string, lockSpaceParam: string) =>
    `EXISTS (
       SELECT 1 FROM pg_locks l
       WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND l.classid = ((hashtextextended(${lockSpaceParam} || ${keyColumn}, 0) >> 32) & 4294967295)::oid
         AND l.objid = (hashtextextended(${lockSpaceParam} || ${keyColumn}, 0) & 4294967295)::oid)`;
  /**
   * An operator's request on the rows of one key or of one run, and in the same statement a
   * notification on the control channel (`<control>:<key>`, heard by the owning process) and on
   * the progress channel (heard by watchers). NOTIFY is delivered when the statement commits.
   */
  const controlStatement = (
    target: 'key' | 'run_id',
    action: 'pause' | 'cancel' | 'resume',
    value: string,
  ) => {
    const set =
      action === 'resume'
        ? `control = NULL,
           state = CASE WHEN state = '${paused}' THEN '${released}' ELSE state END`
        : // A row no attempt owns takes the new state at once; a running attempt sets it itself
          // when it stops at its next batch boundary (release()).
          `control = '${action}',
           state = CASE WHEN running_epoch IS NOT NULL THEN state
                        ELSE '${action === pause ? paused : cancelled}' END`;
    const where =
      action === 'resume'
        ? `control = '${pause}'`
        : action === pause
          ? `state NOT IN ('${completed}', '${cancelled}') AND control IS DISTINCT FROM '${cancel}'`
          : `state NOT IN ('${completed}', '${cancelled}')`;
    return q(
      `WITH changed AS (
         UPDATE ${table} SET ${set}, updated_at = clock_timestamp()
         WHERE ${target} = $1 AND ${where}
         RETURNING key, state, control, queue, job_id, running_epoch)
       SELECT c.key, c.state, c.control, c.queue, c.job_id,
              c.running_epoch IS NOT NULL AS running,
              pg_notify($2, '${action}:' || c.key), pg_notify($3, c.key)
       FROM changed c`,
      [value, controlChannel, channel],
    );
  };
  const q = (text: string, values: unknown[] = []): Query => ({ text, values });
  // Names are per connection and must not clash between two schemas on one DataSource.
  const prepared = (name: string, text: string, values: unknown[]): Query => ({
    name: `checkpoint_${name}_${schema}`,
    text,
    values,
  });

  return {
    // --- migrations -------------------------------------------------------------------------
    migrationLock: () =>
      q(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [`${lockSpace}migrate`]),
    createSchema: () => q(`CREATE SCHEMA IF NOT EXISTS "${schema}"`),
    createMigrationTable: () =>
      q(`CREATE TABLE IF NOT EXISTS "${schema}"."migration" (
        version integer PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`),
    appliedMigrations: () => q(`SELECT version FROM "${schema}"."migration" ORDER BY version`),
    recordMigration: (version: number, name: string) =>
      q(`INSERT INTO "${schema}"."migration" (version, name) VALUES ($1, $2)`, [version, name]),

    // --- leases: session-level advisory locks on the process's one dedicated session ---------
    tryLock: (key: string) =>
      q(`SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked`, [lockSpace + key]),
    unlock: (key: string) =>
      q(`SELECT pg_advisory_unlock(hashtextextended($1, 0)) AS unlocked`, [lockSpace + key]),

    // --- ownership --------------------------------------------------------------------------
    /**
     * Takes the key: bumps the epoch (fencing any earlier attempt) and returns the resume point.
     * With `force` (this process holds the lease) it always succeeds; without it, only a newer
     * dispatch of the same pg-boss job may supersede the live owner. A completed key stays
     * completed, so that the caller can return its stored result.
     */
    claim: (
      key: string,
      owner: string,
      fingerprint: string | null,
      totalItems: number | null,
      dispatch: number | null,
      force: boolean,
      queue: string | null,
      jobId: string | null,
    ) =>
      prepared(
        'claim',
        `INSERT INTO ${table} AS c (key, state, epoch, running_epoch, owner, fingerprint,
                                    total_items, dispatch, queue, job_id, attempt,
                                    attempt_started_at, attempt_start_index)
         VALUES ($1, '${running}', 1, 1, $2, $3, $4, $5, $7, $8, 1, clock_timestamp(), 0)
         ON CONFLICT (key) DO UPDATE SET
           epoch = c.epoch + 1,
           running_epoch = CASE WHEN c.state = '${completed}' THEN NULL ELSE c.epoch + 1 END,
           owner = EXCLUDED.owner,
           dispatch = EXCLUDED.dispatch,
           queue = EXCLUDED.queue,
           job_id = EXCLUDED.job_id,
           state = CASE WHEN c.state = '${completed}' THEN c.state ELSE '${running}' END,
           attempt = c.attempt + CASE WHEN c.state = '${completed}' THEN 0 ELSE 1 END,
           fingerprint = COALESCE(c.fingerprint, EXCLUDED.fingerprint),
           total_items = COALESCE(EXCLUDED.total_items, c.total_items),
           attempt_started_at = clock_timestamp(),
           attempt_start_index = c.current_index,
           updated_at = clock_timestamp()
         WHERE ($6::boolean OR c.dispatch < EXCLUDED.dispatch) AND c.control IS NULL
         RETURNING *, (SELECT p.state FROM ${table} p WHERE p.key = $1) AS prior_state`,
        [key, owner, fingerprint, totalItems, dispatch, force, queue, jobId],
      ),
    /**
     * One statement per batch: absolute progress, applied only while `epoch` may write. It
     * matches on the primary key and the unindexed running_epoch (see migration 2).
     */
    advance: (
      key: string,
      epoch: number,
      currentIndex: number,
      currentBatchIndex: number | null,
      processedBatches: number | null,
      totalBatches: number | null,
      totalItems: number | null,
      cursor: string | null,
      intermediateResult: string | null,
      metadata: string | null,
    ) =>
      prepared(
        'advance',
        `UPDATE ${table} SET
           current_index = $3,
           current_batch_index = COALESCE($4, current_batch_index),
           processed_batches = COALESCE($5, processed_batches),
           total_batches = COALESCE($6, total_batches),
           total_items = COALESCE($7, total_items),
           cursor = COALESCE($8::jsonb, cursor),
           intermediate_result = COALESCE($9::jsonb, intermediate_result),
           metadata = COALESCE($10::jsonb, metadata),
           updated_at = clock_timestamp()
         WHERE key = $1 AND running_epoch = $2
         RETURNING control`,
        [
          key,
          epoch,
          currentIndex,
          currentBatchIndex,
          processedBatches,
          totalBatches,
          totalItems,
          cursor,
          intermediateResult,
          metadata,
        ],
      ),
    // complete, fail, release and abandon end the attempt: running_epoch goes back to NULL.
    complete: (key: string, epoch: number, result: string | null) =>
      prepared(
        'complete',
        `UPDATE ${table} SET state = '${completed}', running_epoch = NULL, result = $3::jsonb,
           error = NULL, owner = NULL, updated_at = clock_timestamp()
         WHERE key = $1 AND running_epoch = $2
         RETURNING run_id`,
        [key, epoch, result],
      ),
    fail: (key: string, epoch: number, error: string) =>
      q(
        `UPDATE ${table} SET state = '${failed}', running_epoch = NULL, error = $3::jsonb,
           owner = NULL, updated_at = clock_timestamp()
         WHERE key = $1 AND running_epoch = $2`,
        [key, epoch, error],
      ),
    /** Ends the attempt at a batch boundary: paused or cancelled when an operator asked. */
    release: (key: string, epoch: number) =>
      q(
        `UPDATE ${table} SET running_epoch = NULL, owner = NULL, updated_at = clock_timestamp(),
           state = CASE control WHEN '${pause}' THEN '${paused}' WHEN '${cancel}' THEN '${cancelled}'
                   ELSE '${released}' END
         WHERE key = $1 AND running_epoch = $2
         RETURNING state`,
        [key, epoch],
      ),

    // --- operators' control ---------------------------------------------------------------------
    pause: (key: string) => controlStatement('key', 'pause', key),
    cancel: (key: string) => controlStatement('key', 'cancel', key),
    resume: (key: string) => controlStatement('key', 'resume', key),
    pauseRun: (runId: string) => controlStatement('run_id', 'pause', runId),
    cancelRun: (runId: string) => controlStatement('run_id', 'cancel', runId),
    resumeRun: (runId: string) => controlStatement('run_id', 'resume', runId),
    /**
     * A claim refused because of a control request, by a process that holds the key's lease (so
     * no live attempt owns it): the row takes the state the request asks for.
     */
    settleControl: (key: string) =>
      q(
        `UPDATE ${table} SET running_epoch = NULL, owner = NULL, updated_at = clock_timestamp(),
           state = CASE control WHEN '${pause}' THEN '${paused}' ELSE '${cancelled}' END
         WHERE key = $1 AND control IS NOT NULL AND state <> '${completed}'
         RETURNING control`,
        [key],
      ),
    /**
     * Moves the resume point of a key no live attempt owns back to item `toIndex`, only while its
     * epoch is still `expectedEpoch`; bumps the epoch so that a second operator's rewind with the
     * same epoch, or a stale attempt, is refused. Batch counters are scaled to the new position.
     */
    rewind: (key: string, toIndex: number, expectedEpoch: number, cursor: string | null) =>
      q(
        `UPDATE ${table} SET epoch = epoch + 1, running_epoch = NULL, owner = NULL,
           current_index = $2,
           current_batch_index = CASE WHEN current_index > 0
             THEN current_batch_index * $2 / current_index ELSE 0 END,
           processed_batches = CASE WHEN current_index > 0
             THEN processed_batches * $2 / current_index ELSE 0 END,
           cursor = CASE WHEN $2 = 0 THEN NULL ELSE COALESCE($4::jsonb, cursor) END,
           state = CASE WHEN state IN ('${completed}', '${running}') THEN '${released}'
                   ELSE state END,
           result = NULL, updated_at = clock_timestamp()
         WHERE key = $1 AND epoch = $3 AND current_index >= $2
           AND NOT ${leaseHeld('key', '$5')}
         RETURNING epoch`,
        [key, toIndex, expectedEpoch, cursor, lockSpace],
      ),
    /** Starts the key over (input changed, or a completed key run again) under a new fingerprint. */
    restart: (key: string, epoch: number, fingerprint: string | null) =>
      q(
        `UPDATE ${table} SET state = '${running}', running_epoch = epoch, fingerprint = $3,
           current_index = 0, current_batch_index = 0, processed_batches = 0, total_batches = 0,
           cursor = NULL, intermediate_result = NULL, result = NULL, error = NULL,
           attempt_start_index = 0, attempt_started_at = clock_timestamp(),
           updated_at = clock_timestamp()
         WHERE key = $1 AND epoch = $2`,
        [key, epoch, fingerprint],
      ),
    /** Keeps the progress but records the new input's fingerprint (onInputChange: 'resume'). */
    setFingerprint: (key: string, epoch: number, fingerprint: string) =>
      q(
        `UPDATE ${table} SET fingerprint = $3, updated_at = clock_timestamp()
         WHERE key = $1 AND running_epoch = $2`,
        [key, epoch, fingerprint],
      ),

    /**
     * Running keys of pg-boss jobs whose lease no session holds: their worker process died.
     * A bigint advisory lock shows in pg_locks as its high half (classid) and low half (objid).
     */
    orphans: (queues: string[]) =>
      q(
        `SELECT c.key, c.running_epoch AS epoch, c.queue, c.job_id, c.dispatch FROM ${table} c
         WHERE c.state = '${running}' AND c.queue = ANY($1::text[]) AND c.job_id IS NOT NULL
           AND c.running_epoch IS NOT NULL
           AND NOT EXISTS (
             SELECT 1 FROM pg_locks l
             WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND l.classid = ((hashtextextended($2 || c.key, 0) >> 32) & 4294967295)::oid
               AND l.objid = (hashtextextended($2 || c.key, 0) & 4294967295)::oid)`,
        [queues, lockSpace],
      ),
    /** Marks a dead worker's attempt failed, unless a new attempt already took the key. */
    abandon: (key: string, epoch: number, error: string) =>
      q(
        `UPDATE ${table} SET state = '${failed}', running_epoch = NULL, error = $3::jsonb,
           owner = NULL, updated_at = clock_timestamp()
         WHERE key = $1 AND running_epoch = $2`,
        [key, epoch, error],
      ),

    // --- the original service's operations ----------------------------------------------------
    /** One upsert (prepared: legacy callers save once per batch); the checkpoint is replaced whole. */
    save: (
      key: string,
      currentBatchIndex: number,
      currentIndex: number,
      processedBatches: number,
      totalBatches: number,
      intermediateResult: string | null,
      metadata: string | null,
    ) =>
      prepared(
        'save',
        `INSERT INTO ${table} AS c (key, state, current_batch_index, current_index,
                                    processed_batches, total_batches, intermediate_result, metadata)
         VALUES ($1, '${running}', $2, $3, $4, $5, $6::jsonb, $7::jsonb)
         ON CONFLICT (key) DO UPDATE SET
           current_batch_index = EXCLUDED.current_batch_index,
           current_index = EXCLUDED.current_index,
           processed_batches = EXCLUDED.processed_batches,
           total_batches = EXCLUDED.total_batches,
           intermediate_result = EXCLUDED.intermediate_result,
           metadata = EXCLUDED.metadata,
           updated_at = clock_timestamp()`,
        [
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
    list: (state: string | null, limit: number) =>
      q(
        `SELECT * FROM ${table} WHERE ($1::text IS NULL OR state = $1)
         ORDER BY updated_at DESC, key LIMIT $2`,
        [state, limit],
      ),
    purge: (state: string, olderThan: Date) =>
      q(`DELETE FROM ${table} WHERE state = $1 AND updated_at < $2`, [state, olderThan]),

    // --- progress across processes ------------------------------------------------------------
    // Progress on one channel, operators' requests on another (one round trip for both).
    ping: () => q(`SELECT 1`),
    listen: () => q(`LISTEN "${channel}"; LISTEN "${controlChannel}"`),
    /** Leaves a borrowed connection as the pool lent it: no advisory lock, no LISTEN. */
    resetSession: () => q(`SELECT pg_advisory_unlock_all(); UNLISTEN *`),
    /** One statement for every key that changed since the last flush. */
    notify: (keys: string[]) =>
      q(`SELECT pg_notify($1, k) FROM unnest($2::text[]) AS k`, [channel, keys]),
  };
}

export type CheckpointSql = ReturnType<typeof checkpointSql>;
