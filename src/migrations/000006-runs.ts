import type { CheckpointMigration } from './migration.interface.js';

/**
 * Runs (see `src/runs/`): one input split into chunks, one pg-boss job and one checkpoint row each.
 * - `run`: one row per run. Its progress is summed from its chunks' checkpoint rows (found by the
 *   `run_id` index of migration 3), never kept here, so that advances never contend on it.
 *   `item_ms` is the per-item time measured when the run completed (auto chunk size reads it);
 *   `completed_hook_at` records that the completion hook ran, in the hook's own transaction.
 * - `run_worker`: one row per process and queue it works, renewed by a heartbeat, so that the
 *   planner knows how many workers are alive on a queue.
 * - `checkpoint.run_chunk`: the chunk's index in its run (not indexed: advances stay HOT).
 */
export const createRuns: CheckpointMigration = {
  version: 6,
  name: 'runs',
  up: (schema) => [
    `CREATE TABLE "${schema}"."run" (
      id text PRIMARY KEY CHECK (char_length(id) BETWEEN 1 AND 200),
      queue text NOT NULL,
      state text NOT NULL CHECK (state IN ('created', 'running', 'completed', 'failed', 'cancelled')),
      mode text NOT NULL CHECK (mode IN ('queued', 'direct')),
      total_items bigint NOT NULL CHECK (total_items > 0),
      chunk_count integer NOT NULL CHECK (chunk_count > 0),
      chunk_size integer NOT NULL CHECK (chunk_size > 0),
      options jsonb,
      metadata jsonb,
      item_ms double precision,
      created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      completed_at timestamptz,
      completed_hook_at timestamptz
    )`,
    // Runs that may still complete, and completed runs whose hook has not run: the sweep's two reads.
    `CREATE INDEX run_open_idx ON "${schema}"."run" (queue) WHERE state IN ('created', 'running')`,
    `CREATE INDEX run_hook_idx ON "${schema}"."run" (queue)
       WHERE state = 'completed' AND completed_hook_at IS NULL`,
    // The planner's read of the last measured per-item time of a queue.
    `CREATE INDEX run_measured_idx ON "${schema}"."run" (queue, completed_at DESC)
       WHERE item_ms IS NOT NULL`,
    `CREATE TABLE "${schema}"."run_worker" (
      process text NOT NULL,
      queue text NOT NULL,
      beat_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      PRIMARY KEY (queue, process)
    )`,
    `ALTER TABLE "${schema}"."checkpoint" ADD COLUMN run_chunk integer`,
  ],
};
