import { CHECKPOINT_CONTROLS, CHECKPOINT_STATES } from '../checkpoint.constants.js';
import { ownerAlive, type StatementKit } from './statement-kit.js';

const { running, released, paused, completed, cancelled } = CHECKPOINT_STATES;
const { pause, cancel } = CHECKPOINT_CONTROLS;

/** Operators' requests: pause, resume, cancel (of a key or a run) and rewind. */
export function controlSql({ table, channel, controlChannel, q }: StatementKit) {
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

  return {
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
  };
}
