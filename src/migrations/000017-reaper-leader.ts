import type { CheckpointMigration } from './migration.interface.js';

/**
 * The one process whose reaper looks for dead owners now (see CheckpointReaper). Every process
 * used to look twice a second, each look reading every running job key: at 500 processes, 1,000
 * looks a second whose cost grew with processes times keys. Now the others only ask, in one
 * single-row statement, whether the leader is still there. One row, there from the start, so
 * that asking is a plain UPDATE whose condition fails without locking anything.
 */
export const reaperLeader: CheckpointMigration = {
  version: 17,
  name: 'reaper-leader',
  up: (schema) => [
    `CREATE TABLE "${schema}"."reaper" (
       id boolean PRIMARY KEY DEFAULT true CHECK (id),
       process text NOT NULL,
       owner_pid integer,
       owner_started timestamptz,
       until timestamptz NOT NULL
     )`,
    `INSERT INTO "${schema}"."reaper" (process, until) VALUES ('', '-infinity')`,
  ],
};
