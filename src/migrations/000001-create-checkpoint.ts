import type { CheckpointMigration } from './migration.interface.js';

/** The checkpoint table: one narrow row per key. */
export const createCheckpoint: CheckpointMigration = {
  version: 1,
  name: 'create-checkpoint',
  up: (schema) => [
    `CREATE TABLE "${schema}"."checkpoint" (
      key text PRIMARY KEY CHECK (char_length(key) BETWEEN 1 AND 512),
      state text NOT NULL CHECK (state IN ('running', 'released', 'completed', 'failed')),
      epoch bigint NOT NULL DEFAULT 0,
      owner text,
      queue text,
      job_id text,
      dispatch integer,
      fingerprint text,
      current_batch_index integer NOT NULL DEFAULT 0 CHECK (current_batch_index >= 0),
      current_index bigint NOT NULL DEFAULT 0 CHECK (current_index >= 0),
      processed_batches integer NOT NULL DEFAULT 0 CHECK (processed_batches >= 0),
      total_batches integer NOT NULL DEFAULT 0 CHECK (total_batches >= 0),
      total_items bigint CHECK (total_items >= 0),
      cursor jsonb,
      intermediate_result jsonb,
      metadata jsonb,
      result jsonb,
      error jsonb,
      attempt integer NOT NULL DEFAULT 0,
      attempt_started_at timestamptz,
      attempt_start_index bigint NOT NULL DEFAULT 0,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    ) WITH (fillfactor = 90)`,
    // Only `state` is indexed: an advance changes no indexed column, so PostgreSQL can update the
    // row in place (a HOT update) and the free space left by fillfactor keeps it on its page.
    `CREATE INDEX checkpoint_state_idx ON "${schema}"."checkpoint" (state)`,
    // Finds the keys of pg-boss jobs whose worker died (see orphans in checkpoint.sql.ts).
    `CREATE INDEX checkpoint_running_queue_idx ON "${schema}"."checkpoint" (queue) WHERE state = 'running'`,
  ],
};
