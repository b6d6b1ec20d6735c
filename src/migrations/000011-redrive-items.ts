import type { CheckpointMigration } from './migration.interface.js';

/**
 * A redrive of chosen ledger items: `redrive_items` on the checkpoint holds the item indexes a
 * pending redrive runs, NULL for the whole ledger (what every redrive asked before it). A process
 * of the previous build reads a pending redrive of chosen items as one of the whole ledger: more
 * items run again, none twice. Not indexed, so advances stay HOT updates.
 */
export const redriveItems: CheckpointMigration = {
  version: 11,
  name: 'redrive-items',
  up: (schema) => [`ALTER TABLE "${schema}"."checkpoint" ADD COLUMN redrive_items bigint[]`],
};
