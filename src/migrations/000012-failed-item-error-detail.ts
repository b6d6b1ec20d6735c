import type { CheckpointMigration } from './migration.interface.js';

/**
 * The ledger keeps the error's class (`constructor.name`: `error.name` reads `Error` for most
 * classes) and its `code` (a string or a number, as jsonb so that it reads back as it was).
 * Nullable columns without a default: adding them changes only the catalog, a lock held for an
 * instant, so the migration applies under live workers; the previous build's inserts, which do
 * not name them, leave them null.
 */
export const failedItemErrorDetail: CheckpointMigration = {
  version: 12,
  name: 'failed-item-error-detail',
  up: (schema) => [
    `ALTER TABLE "${schema}"."failed_item"
       ADD COLUMN IF NOT EXISTS error_class text,
       ADD COLUMN IF NOT EXISTS error_code jsonb`,
  ],
};
