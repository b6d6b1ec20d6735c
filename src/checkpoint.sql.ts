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

/**
 * What a fenced advanceAtCommit says in its error (SQLSTATE 22P02): the statement, not a
 * database failure, refused the write.
 */
export const FENCED_ADVANCE = 'checkpoint advance fenced';

const { running, released, paused, completed, failed, cancelled } = CHECKPOINT_STATES;
const { pause, cancel } = CHECKPOINT_CONTROLS;

/** Builds the statements for one schema. */
export function checkpointSql(schema: string) {
  assertSchemaName(schema);
  const table = `"${schema}"."checkpoint"`;
  const lockSpace = `nestjs-checkpoint:${schema}:`;
  const channel = `${schema}_checkpoint`;
  const controlChannel = `${schema}_checkpoint_control`;
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
  /**
   * A prepared statement: its text is built once, here, so that every call sends the very same
   * string (pg checks it against the one it prepared on the connection). Names are per connection
   * and must not clash between two schemas on one DataSource.
   */
  const prepared = <A extends unknown[]>(
    name: string,
    text: string,
    values: (...args: A) => unknown[],
  ): ((...args: A) => Query) => {
    const statementName = `checkpoint_${name}_${schema}`;
    return (...args) => ({ name: statementName, text, values: values(...args) });
  };

  // Counts left out (null) follow from the old row (the right-hand sides read it): one more
  // batch when the position moved on, and, with a known item total, the batches done plus the
  // remaining items at this batch's size.
  const advanceUpdate = `UPDATE ${table} SET
       current_index = $3,
       current_batch_index = COALESCE($4,
         current_batch_index + CASE WHEN $3 > current_index THEN 1 ELSE 0 END),
       processed_batches = COALESCE($5,
         processed_batches + CASE WHEN $3 > current_index THEN 1 ELSE 0 END),
       total_batches = COALESCE($6,
         CASE WHEN COALESCE($7, total_items) IS NOT NULL AND $3 > current_index THEN
           COALESCE($5, processed_batches + 1)
             + ceil(GREATEST(COALESCE($7, total_items) - $3, 0)::numeric
                    / ($3 - current_index))::bigint
         ELSE total_batches END),
       total_items = COALESCE($7, total_items),
       cursor = COALESCE($8::jsonb, cursor),
       intermediate_result = COALESCE($9::jsonb, intermediate_result),
       metadata = COALESCE($10::jsonb, metadata),
       updated_at = clock_timestamp()
     WHERE key = $1 AND running_epoch = $2
       AND ($11::text IS NULL
            OR set_config('idle_in_transaction_session_timeout', $11::text, true) IS NOT NULL)`;
  const advanceValues = (
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
    idleTimeoutMs: number | null = null,
  ) => [
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
    idleTimeoutMs === null ? null : String(idleTimeoutMs),
  ];

  return {
    schema,
    // --- migrations -------------------------------------------------------------------------
    migrationLock: () =>
      q(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [`${lockSpace}migrate`]),
    /** The session lock of a migration that runs outside a transaction (try, never wait). */
    concurrentMigrationLock: () =>
      q(`SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked`, [
        `${lockSpace}migrate-concurrently`,
      ]),
    concurrentMigrationUnlock: () =>
      q(`SELECT pg_advisory_unlock(hashtextextended($1, 0))`, [`${lockSpace}migrate-concurrently`]),
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

    // --- leases --------------------------------------------------------------------------------
    /**
     * The identity of the lease session, read once per session: its backend pid and a start
     * time (a pid alone is reused by PostgreSQL). Direct, the start is the backend's own, so that
     * pg_stat_activity tells a dead owner at once. Through a session pooler (`pooled`) a server
     * connection outlives its client, so the start is now, and the session holds an advisory
     * lock named by pid and start, which the pooler's DISCARD ALL drops when the client goes:
     * pg_locks tells a dead owner there (see ownerAlive). The start stays text so that it
     * compares exactly (a JavaScript Date would drop its microseconds). The same statement asks
     * the server to probe this session's socket (keepalives, a user timeout), so that a silently
     * partitioned owner's backend ends, and its leases with it, without waiting two hours.
     */
    sessionIdentity: (
      pooled: boolean,
      keepaliveIdleS: number,
      keepaliveIntervalS: number,
      userTimeoutMs: number,
    ) =>
      q(
        `WITH me AS (
           SELECT pg_backend_pid() AS pid,
             CASE WHEN $1 THEN clock_timestamp() ELSE (SELECT backend_start FROM pg_stat_activity
                                                       WHERE pid = pg_backend_pid()) END AS started)
         SELECT pid, started::text AS started,
           pg_advisory_lock(pid, ${ownerLockId('started')}) AS locked,
           set_config('tcp_keepalives_idle', $2, false) AS idle,
           set_config('tcp_keepalives_interval', $3, false) AS interval,
           set_config('tcp_keepalives_count', '3', false) AS count,
           set_config('tcp_user_timeout', $4, false) AS user_timeout
         FROM me WHERE started IS NOT NULL`,
        [pooled, String(keepaliveIdleS), String(keepaliveIntervalS), String(userTimeoutMs)],
      ),
    /**
     * Renews every lease of this process in one statement, and re-asserts them after the lease
     * session was replaced (the new session's identity goes on the rows). Only a lease whose
     * attempt still runs (key and running epoch match) is renewed; a key missing from the result
     * was taken over meanwhile. It reads back each key's operator request too: a process that
     * missed the NOTIFY (its session was down) obeys at its next renewal, which follows a
     * reconnection at once. `key = ANY($1)` lets the rows be found through the primary key
     * whatever the join's estimate: a hash join would read the whole table on every renewal.
     */
    renew: (
      keys: string[],
      epochs: number[],
      pid: number | null,
      started: string | null,
      ttlMs: number,
    ) =>
      q(
        `UPDATE ${table} AS c SET owner_pid = $3, owner_started = $4::timestamptz,
           lease_expires_at = clock_timestamp() + $5 * interval '1 millisecond'
         FROM unnest($1::text[], $2::bigint[]) AS l(key, epoch)
         WHERE c.key = ANY($1::text[]) AND c.key = l.key AND c.running_epoch = l.epoch
         RETURNING c.key, c.control`,
        [keys, epochs, pid, started, ttlMs],
      ),

    // --- ownership --------------------------------------------------------------------------
    /**
     * Takes the key: bumps the epoch (fencing any earlier attempt), records the owner's lease
     * session and lease expiry, and returns the resume point. It takes a key that no attempt
     * runs, one whose owner is dead (its lease session is gone from pg_stat_activity, or its
     * lease expired), one a newer dispatch of the same pg-boss job supersedes, or one this very
     * attempt owned (`previousEpoch`: resuming in place after a database outage). Deciding all
     * of it in this one statement serialises racing claimants on the row lock. A completed key
     * stays completed, so that the caller can return its stored result.
     */
    claim: prepared(
      'claim',
      `INSERT INTO ${table} AS c (key, state, epoch, running_epoch, owner, fingerprint,
                                    total_items, dispatch, queue, job_id, attempt,
                                    attempt_started_at, attempt_start_index,
                                    owner_pid, owner_started, lease_expires_at)
         VALUES ($1, '${running}', 1, 1, $2, $3, $4, $5, $7, $8, 1, clock_timestamp(), 0,
                 $9, $10::timestamptz, clock_timestamp() + $11 * interval '1 millisecond')
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
           owner_pid = EXCLUDED.owner_pid,
           owner_started = EXCLUDED.owner_started,
           lease_expires_at = EXCLUDED.lease_expires_at,
           updated_at = clock_timestamp()
         WHERE (c.running_epoch IS NULL
                OR c.running_epoch = $6
                OR c.dispatch < EXCLUDED.dispatch
                OR c.lease_expires_at IS NULL OR c.lease_expires_at < clock_timestamp()
                OR NOT ${ownerAlive('c')})
           AND c.control IS NULL
         RETURNING *, (SELECT p.state FROM ${table} p WHERE p.key = $1) AS prior_state`,
      (
        key: string,
        owner: string,
        fingerprint: string | null,
        totalItems: number | null,
        dispatch: number | null,
        previousEpoch: number | null,
        queue: string | null,
        jobId: string | null,
        ownerPid: number | null,
        ownerStarted: string | null,
        ttlMs: number,
      ) => [
        key,
        owner,
        fingerprint,
        totalItems,
        dispatch,
        previousEpoch,
        queue,
        jobId,
        ownerPid,
        ownerStarted,
        ttlMs,
      ],
    ),
    /**
     * One statement per batch: absolute progress, applied only while `epoch` may write. It
     * matches on the primary key and the unindexed running_epoch (see migration 2).
     *
     * `idleTimeoutMs` (the library's own batch transactions): from here to the commit the
     * transaction holds the key's row lock, so an owner frozen or cut off in between would block
     * every claimant until PostgreSQL noticed. The same statement bounds that (SET LOCAL
     * idle_in_transaction_session_timeout, through set_config), at no extra round trip.
     */
    advance: prepared('advance', advanceUpdate, advanceValues),
    /**
     * The advance of the library's own batch transaction, sent with its COMMIT right behind it
     * (CheckpointRepository.runAndCommit). A fenced advance must not let that COMMIT keep the
     * batch's writes, so instead of matching no row it fails, naming FENCED_ADVANCE (a cast of
     * a text built from the row count: nothing the planner can fold), and PostgreSQL answers
     * the COMMIT that follows an error by rolling back.
     */
    advanceAtCommit: prepared(
      'advance_at_commit',
      `WITH advanced AS (${advanceUpdate} RETURNING 1)
       SELECT CASE count(*) WHEN 1 THEN 1
                ELSE format('${FENCED_ADVANCE} (key %s, epoch %s, %s rows)', $1, $2, count(*))::int
              END AS advanced
       FROM advanced`,
      advanceValues,
    ),
    // complete, fail, release and abandon end the attempt: running_epoch goes back to NULL.
    complete: prepared(
      'complete',
      `UPDATE ${table} SET state = '${completed}', running_epoch = NULL, result = $3::jsonb,
           error = NULL, owner = NULL, updated_at = clock_timestamp()
         WHERE key = $1 AND running_epoch = $2
         RETURNING run_id`,
      (key: string, epoch: number, result: string | null) => [key, epoch, result],
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
     * A claim refused because of a control request: when no live attempt owns the key (none
     * runs, or its owner is dead), the row takes the state the request asks for.
     */
    settleControl: (key: string) =>
      q(
        `UPDATE ${table} AS c SET running_epoch = NULL, owner = NULL,
           updated_at = clock_timestamp(),
           state = CASE control WHEN '${pause}' THEN '${paused}' ELSE '${cancelled}' END
         WHERE key = $1 AND control IS NOT NULL AND state <> '${completed}'
           AND (running_epoch IS NULL
                OR lease_expires_at IS NULL OR lease_expires_at < clock_timestamp()
                OR NOT ${ownerAlive('c')})
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
        `UPDATE ${table} AS c SET epoch = epoch + 1, running_epoch = NULL, owner = NULL,
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
           AND (running_epoch IS NULL
                OR lease_expires_at IS NULL OR lease_expires_at < clock_timestamp()
                OR NOT ${ownerAlive('c')})
         RETURNING epoch`,
        [key, toIndex, expectedEpoch, cursor],
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
     * Running keys of pg-boss jobs whose owner is dead: its lease expired, or its lease session is
     * gone from pg_stat_activity. Any queue: hand-written handlers record theirs too.
     */
    orphans: () =>
      q(
        `SELECT c.key, c.running_epoch AS epoch, c.queue, c.job_id, c.dispatch, c.owner_pid,
                c.owner_started::text AS owner_started,
                (c.lease_expires_at IS NULL OR c.lease_expires_at < clock_timestamp()) AS expired
           FROM ${table} c
          WHERE c.state = '${running}' AND c.queue IS NOT NULL AND c.job_id IS NOT NULL
            AND c.running_epoch IS NOT NULL
            AND (c.lease_expires_at IS NULL OR c.lease_expires_at < clock_timestamp()
                 OR NOT ${ownerAlive('c')})`,
      ),
    /**
     * Marks a dead owner's attempt failed, unless it came back meanwhile: the same epoch, and
     * either its lease expired or the very session the reaper saw dead is still gone (a live
     * owner whose session reconnected has re-asserted the lease under a new identity).
     */
    abandon: (
      key: string,
      epoch: number,
      error: string,
      ownerPid: number | null,
      ownerStarted: string | null,
    ) =>
      q(
        `UPDATE ${table} AS c SET state = '${failed}', running_epoch = NULL, error = $3::jsonb,
           owner = NULL, owner_pid = NULL, owner_started = NULL, lease_expires_at = NULL,
           updated_at = clock_timestamp()
         WHERE c.key = $1 AND c.running_epoch = $2
           AND (c.lease_expires_at IS NULL OR c.lease_expires_at < clock_timestamp()
                OR (c.owner_pid IS NOT DISTINCT FROM $4::integer
                    AND c.owner_started IS NOT DISTINCT FROM $5::timestamptz
                    AND NOT ${ownerAlive('c')}))`,
        [key, epoch, error, ownerPid, ownerStarted],
      ),

    // --- the original service's operations ----------------------------------------------------
    /** One upsert (prepared: legacy callers save once per batch); the checkpoint is replaced whole. */
    save: prepared(
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
           DELETE FROM "${schema}"."failed_item" f USING doomed d WHERE f.key = d.key RETURNING 1
         ), keys AS (
           DELETE FROM ${table} c USING doomed d WHERE c.key = d.key RETURNING 1
         )
         SELECT (SELECT count(*) FROM keys)::int AS keys,
                (SELECT count(*) FROM items)::int AS items,
                d.created_at::text AS at, d.key
         FROM doomed d ORDER BY d.created_at DESC, d.key DESC LIMIT 1`,
        [state, before, after?.[0] ?? null, after?.[1] ?? null, limit],
      ),

    // --- progress across processes ------------------------------------------------------------
    // Progress on one channel, operators' requests on another (one round trip for both).
    ping: () => q(`SELECT 1`),
    listen: () => q(`LISTEN "${channel}"; LISTEN "${controlChannel}"`),
    /**
     * Leaves a borrowed connection as the pool lent it: no LISTEN, no owner's lock, default
     * socket probes.
     */
    resetSession: () =>
      q(
        `UNLISTEN *; SELECT pg_advisory_unlock_all(); RESET tcp_keepalives_idle;
         RESET tcp_keepalives_interval; RESET tcp_keepalives_count; RESET tcp_user_timeout`,
      ),
    /** The sessions that block `pid` (for the log line of a stalled statement). */
    blockingPids: (pid: number) => q(`SELECT pg_blocking_pids($1) AS pids`, [pid]),
    /** Cancels the statement a connection of the library runs (a statement timeout). */
    cancelBackend: (pid: number) => q(`SELECT pg_cancel_backend($1) AS cancelled`, [pid]),
    /** One statement for every key that changed since the last flush. */
    notify: (keys: string[]) =>
      q(`SELECT pg_notify($1, k) FROM unnest($2::text[]) AS k`, [channel, keys]),
  };
}

export type CheckpointSql = ReturnType<typeof checkpointSql>;

/**
 * Whether the owner recorded on row `c` is alive. No pid: the owner has no lease session (a
 * transaction pooler without a direct URL) and only its lease's expiry tells. Otherwise its lease
 * session is alive: the backend with that pid and start time is in pg_stat_activity (a direct
 * session; a pid alone is not enough, PostgreSQL reuses them), or that backend holds the
 * owner's advisory lock (a session through a pooler, whose server connection outlives it). A
 * session of another role shows no start time without pg_read_all_stats: it counts as alive
 * (the lease's expiry still bounds it).
 */
function ownerAlive(c: string): string {
  return `(${c}.owner_pid IS NULL
           OR EXISTS (SELECT 1 FROM pg_stat_activity a
                       WHERE a.pid = ${c}.owner_pid
                         AND (a.backend_start = ${c}.owner_started OR a.backend_start IS NULL))
           OR EXISTS (SELECT 1 FROM pg_locks l
                       WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted
                         AND l.pid = ${c}.owner_pid AND l.classid = ${c}.owner_pid::oid
                         AND l.objid = ${ownerLockId(`${c}.owner_started`)}::oid))`;
}

/**
 * The second half of an owner's advisory lock (the first is its pid): its start time in
 * microseconds, folded into a positive int4. Computed from the timestamp, not its text, which
 * depends on the session's TimeZone.
 */
function ownerLockId(started: string): string {
  return `((extract(epoch FROM ${started}) * 1000000)::bigint % 2147483647)::int`;
}
