/** One numbered schema change. `up` returns its DDL statements for the given schema. */
export interface CheckpointMigration {
  version: number;
  name: string;
  /**
   * Set on a migration whose statements cannot run in a transaction block (CREATE INDEX
   * CONCURRENTLY, so that writers go on while a big table is indexed). The runner commits the
   * migrations before it, then sends its statements one by one outside any transaction, under a
   * session-level lock, and records it. Each statement must be safe to run again: a process that
   * dies half way leaves it unrecorded, and the next one starts it over.
   */
  concurrent?: boolean;
  /**
   * `concurrently: false` (a concurrent migration run inside a caller's transaction, see
   * createCheckpointTypeOrmMigrations) asks for the plain, blocking form of its statements.
   */
  up(schema: string, options?: { concurrently: boolean }): string[];
}
