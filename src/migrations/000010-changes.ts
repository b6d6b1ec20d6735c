import type { CheckpointMigration } from './migration.interface.js';

/**
 * What changed, for processes that cannot LISTEN (a transaction pooler without a direct URL):
 * each announcement of such a process is a row, and each such process reads the new rows in one
 * statement per interval. `xid` orders them by commit visibility: a reader asks for the rows of
 * transactions not yet finished at its previous read (see CheckpointSql.pollChanges), so that a
 * row whose transaction commits late is still read. Unlogged: a crash loses only announcements,
 * which readers re-read after anyway; rows older than a minute are deleted by the readers.
 */
export const changes: CheckpointMigration = {
  version: 10,
  name: 'changes',
  up: (schema) => [
    `CREATE UNLOGGED TABLE "${schema}"."change" (
       id bigserial PRIMARY KEY,
       xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
       channel text NOT NULL,
       payload text NOT NULL,
       at timestamptz NOT NULL DEFAULT clock_timestamp()
     )`,
    `CREATE INDEX "change_xid_idx" ON "${schema}"."change" (xid)`,
    `CREATE INDEX "change_at_idx" ON "${schema}"."change" (at)`,
  ],
};
