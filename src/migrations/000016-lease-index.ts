import type { CheckpointMigration } from './migration.interface.js';

/**
 * The running keys alone, by key: a lease renewal finds its process's rows through this index,
 * whose size follows the work in flight, instead of descending the primary key once per lease
 * through every key the table ever held (10,000 leases cost 1.37x on a year of history through
 * the primary key). Neither column changes on an advance or a renewal, so both stay HOT updates.
 * Built concurrently, outside the migration transaction, like migration 9.
 */
export const leaseIndex: CheckpointMigration = {
  version: 16,
  name: 'lease-index',
  concurrent: true,
  up: (schema, { concurrently } = { concurrently: true }) => {
    const how = concurrently ? 'CONCURRENTLY ' : '';
    const name = `"${schema}"."checkpoint_running_key_idx"`;
    return [
      // A build that failed half way leaves an invalid index behind: it goes first.
      `DROP INDEX ${how}IF EXISTS ${name}`,
      `CREATE INDEX ${how}checkpoint_running_key_idx ON "${schema}"."checkpoint" (key)
         WHERE state = 'running'`,
    ];
  },
};
