import type { CheckpointMigration } from './migration.interface.js';

/**
 * The processes that watch progress now (a row each, renewed while they watch). Workers send
 * their progress notifications only while a row is live: a NOTIFY is a commit of its own,
 * serialised with every other notifying commit of the cluster, and a fleet nobody watches
 * would otherwise send one per process every 100 ms for no one. Logged, so that a database
 * restart keeps the watchers it had.
 */
export const watchers: CheckpointMigration = {
  version: 14,
  name: 'watchers',
  up: (schema) => [
    `CREATE TABLE "${schema}"."watcher" (
       process text PRIMARY KEY,
       until timestamptz NOT NULL
     )`,
  ],
};
