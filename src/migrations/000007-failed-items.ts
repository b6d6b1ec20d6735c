import type { CheckpointMigration } from './migration.interface.js';

/**
 * The failed-item ledger: one row per item isolated by a skip policy, with its error, the
 * attempt that skipped it and when; rows go with their key (ON DELETE CASCADE: purge and
 * clearCheckpoint remove them). `redrive_requested_at` on the checkpoint marks a key whose next
 * attempt runs its ledger items first; it is not indexed, so advances stay HOT updates.
 */
export const failedItems: CheckpointMigration = {
  version: 7,
  name: 'failed-items',
  up: (schema) => [
    `CREATE TABLE "${schema}"."failed_item" (
      key text NOT NULL REFERENCES "${schema}"."checkpoint" (key) ON DELETE CASCADE,
      item_index bigint NOT NULL CHECK (item_index >= 0),
      item jsonb,
      error_name text NOT NULL,
      error_message text NOT NULL,
      attempt integer NOT NULL,
      failed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      PRIMARY KEY (key, item_index)
    )`,
    `ALTER TABLE "${schema}"."checkpoint" ADD COLUMN redrive_requested_at timestamptz`,
  ],
};
