import type { CheckpointMigration } from './migration.interface.js';

/**
 * `hand_backs` on the checkpoint: how many pickups of the key's pg-boss job followed a hand-back
 * that spent no retry (a graceful shutdown, an operator's pause and resume). pg-boss counts each
 * such pickup in the job's `retry_count` (and the library raises `retry_limit` by one with it), so
 * the retries a job really spent are `retry_count - hand_backs`. A constant default: no rewrite.
 */
export const handBacks: CheckpointMigration = {
  version: 13,
  name: 'hand-backs',
  up: (schema) => [
    `ALTER TABLE "${schema}"."checkpoint" ADD COLUMN hand_backs integer NOT NULL DEFAULT 0`,
  ],
};
