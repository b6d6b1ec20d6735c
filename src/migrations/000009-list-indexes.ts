import type { CheckpointMigration } from './migration.interface.js';

/**
 * The indexes that keep lists, paging and retention at the cost of an empty database on a table
 * of ten million rows: keyset pages of keys and runs, newest first, with or without a state
 * filter, and the oldest finished runs for retention. Built with CREATE INDEX CONCURRENTLY, so
 * that writers go on while a big table is indexed: the migration runs outside the migration
 * transaction (see `concurrent` in checkpoint.migrations.ts).
 *
 * Not one of them holds a column an advance writes (updated_at, current_index, ...): advances
 * stay HOT updates. That is why keys are listed by created_at, not by their last update.
 * `(state, created_at, key)` serves what `(state)` served, which goes: one index fewer to
 * maintain on every state change.
 */
export const listIndexes: CheckpointMigration = {
  version: 9,
  name: 'list-indexes',
  concurrent: true,
  up: (schema, { concurrently } = { concurrently: true }) => {
    const how = concurrently ? 'CONCURRENTLY ' : '';
    const index = (name: string, on: string) => [
      // A build that failed half way leaves an invalid index behind: it goes first.
      `DROP INDEX ${how}IF EXISTS "${schema}"."${name}"`,
      `CREATE INDEX ${how}"${name}" ON "${schema}".${on}`,
    ];
    return [
      ...index('checkpoint_created_idx', `checkpoint (created_at, key)`),
      ...index('checkpoint_state_created_idx', `checkpoint (state, created_at, key)`),
      `DROP INDEX ${how}IF EXISTS "${schema}"."checkpoint_state_idx"`,
      // The chunks of a run still moving: a run's progress adds theirs to what its row keeps.
      ...index(
        'checkpoint_run_open_idx',
        `checkpoint (run_id) WHERE run_id IS NOT NULL
           AND state NOT IN ('completed', 'cancelled', 'failed')`,
      ),
      ...index('run_created_idx', `run (created_at, id)`),
      ...index('run_state_created_idx', `run (state, created_at, id)`),
      ...index('run_queue_created_idx', `run (queue, created_at, id)`),
      ...index('run_finished_idx', `run (updated_at) WHERE state IN ('completed', 'cancelled')`),
    ];
  },
};
