import { CHECKPOINT_CONTROLS, CHECKPOINT_STATES } from '../checkpoint.constants.js';
import {
  CHECKPOINT_COLUMNS,
  literal,
  ownerAlive,
  ownerLockId,
  type Query,
  type StatementKit,
} from './statement-kit.js';

/**
 * What a fenced advanceAtCommit says in its error (SQLSTATE 22P02): the statement, not a
 * database failure, refused the write.
 */
export const FENCED_ADVANCE = 'checkpoint advance fenced';

/** The control channel's word for a job handed back to its queue (see handedBack). */
export const HANDED_BACK = 'handback';

const { running, released, paused, completed, failed, cancelled } = CHECKPOINT_STATES;
const { pause, cancel } = CHECKPOINT_CONTROLS;

/** The attempt's statements: claim, advance, its end, and the reaper's look-ups. */
export function ownershipSql({ schema, table, controlChannel, q, prepared }: StatementKit) {
  // Counts left out (null) follow from the old row (the right-hand sides read it): one more
  // batch when the position moved on, and, with a known item total, the batches done plus the
  // remaining items at this batch's size.
  const advanceSet = `
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
       updated_at = clock_timestamp()`;
  const boundIdle = `($11::text IS NULL
            OR set_config('idle_in_transaction_session_timeout', $11::text, true) IS NOT NULL)`;
  const advanceUpdate = `UPDATE ${table} SET ${advanceSet}
     WHERE key = $1 AND running_epoch = $2 AND ${boundIdle}`;
  // Fenced, it fails instead of matching no row: a stale epoch fails on the row (also when a
  // claim commits while it waits for the row's lock: PostgreSQL then checks the new version),
  // a key gone (cleared) fails in the sub-select. The error is a cast of a text that names the
  // row's epoch (a column: nothing the planner can fold before the row is read).
  const advanceAtCommit = `UPDATE ${table} SET ${advanceSet}
     WHERE key = $1
       AND CASE WHEN running_epoch = $2 THEN true
                ELSE format('${FENCED_ADVANCE} (key %s, epoch %s, running epoch %s)',
                            $1, $2, running_epoch)::int > 0 END
       AND (SELECT CASE WHEN EXISTS (SELECT FROM ${table} WHERE key = $1) THEN true
                        ELSE format('${FENCED_ADVANCE} (key %s gone, epoch %s)', $1, $2)::int > 0
                   END)
       AND ${boundIdle}`;
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

  // An SQL name: at most 63 bytes, which the schema's 48 leave room for.
  const foldName = `ckpt_fold_${schema}`;

  return {
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
         RETURNING ${CHECKPOINT_COLUMNS},
                   (SELECT p.state FROM ${table} p WHERE p.key = $1) AS prior_state`,
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
     * batch's writes, so instead of matching no row it fails, naming FENCED_ADVANCE, and
     * PostgreSQL answers the COMMIT that follows an error by rolling back.
     */
    advanceAtCommit: prepared('advance_at_commit', advanceAtCommit, advanceValues),
    /**
     * advanceAtCommit, its COMMIT and the next batch's START TRANSACTION in one message of the
     * simple protocol (CheckpointRepository.commitAndBeginNext): the fewest messages and
     * answers a batch can cost, which is where the time of a statement goes here (bench
     * section 3). The simple protocol binds nothing, so the advance is prepared once per
     * connection (`prepare`, an SQL PREPARE, which outlives transactions) and executed with its
     * values as literals. A failing statement skips the rest of the message: a fenced advance
     * leaves the transaction aborted, never committed.
     */
    advanceCommitBegin: {
      prepare: `PREPARE ${foldName} (text, bigint, bigint, bigint, bigint, bigint, bigint,
                  jsonb, jsonb, jsonb, text) AS ${advanceAtCommit}`,
      /** The message that runs `advance`, a statement of advanceAtCommit. */
      text: (advance: Query) =>
        `EXECUTE ${foldName} (${advance.values.map(literal).join(', ')}); ` +
        'COMMIT; START TRANSACTION',
    },
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
     * This process's reaper leads for `seconds` more, if it led already, or if the leader's
     * time ran out (frozen, cut off) or its lease session is gone (crashed). No row when another
     * process leads: the condition fails on the one row without locking it. Two processes that
     * both find the leader gone queue on the row, and the second then sees the first's lead.
     * Prepared: every process sends it twice a second.
     */
    leadReaper: prepared(
      'lead_reaper',
      `UPDATE "${schema}"."reaper" AS r
          SET process = $1, owner_pid = $2, owner_started = $3::timestamptz,
              until = clock_timestamp() + make_interval(secs => $4)
        WHERE r.process = $1 OR r.until < clock_timestamp() OR NOT ${ownerAlive('r')}
       RETURNING true AS leads`,
      (process: string, pid: number | null, started: string | null, seconds: number) => [
        process,
        pid,
        started,
        seconds,
      ],
    ),
    /**
     * Running keys of pg-boss jobs whose owner is dead: its lease expired, or its lease session is
     * gone from pg_stat_activity. Any queue: hand-written handlers record theirs too.
     *
     * Two branches instead of one OR (the same test as ownerAlive): as anti-joins the activity
     * and lock lists are read once per statement into a hash, where a subquery per row put the
     * plan's estimated cost over jit_above_cost from a few thousand running keys on, and every
     * look, twice a second in each process, paid a JIT compilation (bench section 15). One
     * clock reading serves both branches, so that a lease expiring meanwhile is in one of them.
     */
    orphans: () => {
      const columns = `c.key, c.running_epoch AS epoch, c.queue, c.job_id, c.dispatch, c.owner,
                c.owner_pid, c.owner_started::text AS owner_started`;
      const runningJob = `c.state = '${running}' AND c.queue IS NOT NULL AND c.job_id IS NOT NULL
            AND c.running_epoch IS NOT NULL`;
      return q(
        `WITH look AS MATERIALIZED (SELECT clock_timestamp() AS at)
         SELECT ${columns}, true AS expired
           FROM ${table} c, look
          WHERE ${runningJob}
            AND (c.lease_expires_at IS NULL OR c.lease_expires_at < look.at)
         UNION ALL
         SELECT ${columns}, false AS expired
           FROM ${table} c, look
          WHERE ${runningJob}
            AND c.lease_expires_at >= look.at AND c.owner_pid IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                             WHERE a.pid = c.owner_pid
                               AND (a.backend_start = c.owner_started OR a.backend_start IS NULL))
            AND NOT EXISTS (SELECT 1 FROM pg_locks l
                             WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted
                               AND l.pid = c.owner_pid AND l.classid = c.owner_pid::oid
                               AND l.objid = ${ownerLockId('c.owner_started')}::oid)`,
      );
    },
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
    /**
     * The key's job was handed back without spending a retry: its next pickup, which pg-boss
     * counts in `retry_count`, is a hand-back's. In the hand-back's transaction.
     */
    countHandBack: (key: string) =>
      q(`UPDATE ${table} SET hand_backs = hand_backs + 1 WHERE key = $1`, [key]),
    /**
     * Tells every process that a job of `queue` was handed back (control channel, `handback:`),
     * so that an idle worker of the queue fetches it now instead of at its next poll.
     */
    handedBack: (queue: string) =>
      q(`SELECT pg_notify($1, $2)`, [controlChannel, `${HANDED_BACK}:${queue}`]),
  };
}
