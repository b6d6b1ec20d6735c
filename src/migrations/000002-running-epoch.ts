import type { CheckpointMigration } from './migration.interface.js';

/**
 * `running_epoch`: the epoch of the attempt that may write to the key, or NULL when none may.
 * The writes of an attempt match on key and running_epoch alone. Matching on `state = 'running'`
 * as well let the planner pick the state index and walk every running key on each advance;
 * running_epoch has no index on purpose, so only the primary key fits.
 */
export const addRunningEpoch: CheckpointMigration = {
  version: 2,
  name: 'running-epoch',
  up: (schema) => [
    `ALTER TABLE "${schema}"."checkpoint" ADD COLUMN running_epoch bigint`,
    `UPDATE "${schema}"."checkpoint" SET running_epoch = epoch WHERE state = 'running' AND owner IS NOT NULL`,
  ],
};
