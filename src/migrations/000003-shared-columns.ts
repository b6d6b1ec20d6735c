import type { CheckpointMigration } from './migration.interface.js';

/**
 * Columns and states the ownership, runs, failing-items and control features share:
 * - states `pending` (a run's chunk whose job has not started), `paused` and `cancelled`;
 * - `control`: a request from an operator (`pause` or `cancel`) that the running attempt obeys
 *   at its next batch boundary;
 * - `run_id`: the run a chunk belongs to (indexed: a run's progress sums its chunks' rows);
 * - `skipped_items`: items isolated into the failed-item ledger;
 * - the owner's lease: the backend pid and start time of the owning process's lease session,
 *   and when the lease lapses unless renewed;
 * - counts widened to bigint, so that every count JavaScript can hold exactly fits.
 * No index on a column the advance writes: advances stay HOT updates.
 */
export const sharedColumns: CheckpointMigration = {
  version: 3,
  name: 'shared-columns',
  up: (schema) => {
    const table = `"${schema}"."checkpoint"`;
    return [
      `ALTER TABLE ${table} DROP CONSTRAINT IF EXISTS checkpoint_state_check`,
      `ALTER TABLE ${table} ADD CONSTRAINT checkpoint_state_check CHECK (state IN
         ('pending', 'running', 'released', 'paused', 'completed', 'failed', 'cancelled'))`,
      `ALTER TABLE ${table}
         ADD COLUMN control text CHECK (control IN ('pause', 'cancel')),
         ADD COLUMN run_id text,
         ADD COLUMN skipped_items bigint NOT NULL DEFAULT 0 CHECK (skipped_items >= 0),
         ADD COLUMN owner_pid integer,
         ADD COLUMN owner_started timestamptz,
         ADD COLUMN lease_expires_at timestamptz,
         ALTER COLUMN current_batch_index TYPE bigint,
         ALTER COLUMN processed_batches TYPE bigint,
         ALTER COLUMN total_batches TYPE bigint`,
      `CREATE INDEX checkpoint_run_idx ON ${table} (run_id) WHERE run_id IS NOT NULL`,
    ];
  },
};
