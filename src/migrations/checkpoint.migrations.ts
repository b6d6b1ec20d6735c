import { setTimeout as wait } from 'node:timers/promises';
import type { MigrationInterface, QueryRunner } from 'typeorm';
import { createCheckpoint } from './000001-create-checkpoint.js';
import { addRunningEpoch } from './000002-running-epoch.js';
import { sharedColumns } from './000003-shared-columns.js';
import { createRuns } from './000006-runs.js';
import { failedItems } from './000007-failed-items.js';
import { runCounts } from './000008-run-counts.js';
import { listIndexes } from './000009-list-indexes.js';
import { changes } from './000010-changes.js';
import { checkpointSql } from '../checkpoint.sql.js';
import { assertSchemaName } from '../checkpoint.validation.js';

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

/** Every migration of the package, in order. New ones are appended, never edited. */
export const checkpointMigrations: readonly CheckpointMigration[] = Object.freeze([
  createCheckpoint,
  addRunningEpoch,
  sharedColumns,
  createRuns,
  failedItems,
  runCounts,
  listIndexes,
  changes,
]);

/** How often a process waiting for another's concurrent migration asks for the lock again. */
const CONCURRENT_LOCK_POLL_MS = 250;

/**
 * Applies the missing migrations of `schema`. The transactional ones go in one transaction,
 * under a transaction-level advisory lock, so that any number of processes booting at once is
 * safe: the first applies them, the others wait and then find nothing to do. A `concurrent`
 * migration ends that transaction and runs on its own (see CheckpointMigration.concurrent); the
 * ones after it follow in a new transaction. Returns the versions it applied.
 *
 * `concurrent: false` (a transaction pooler, whose statements outside a transaction may each run
 * on another server connection: no session lock holds across them) applies the concurrent
 * migrations in their plain, blocking form inside the transaction.
 */
export async function runCheckpointMigrations(
  queryRunner: QueryRunner,
  schema: string,
  options: { concurrent: boolean } = { concurrent: true },
): Promise<number[]> {
  assertSchemaName(schema);
  const applied: number[] = [];
  for (;;) {
    await queryRunner.startTransaction();
    let next: CheckpointMigration | undefined;
    try {
      next = await applyMissing(queryRunner, schema, Infinity, applied, options.concurrent);
      await queryRunner.commitTransaction();
    } catch (error) {
      await queryRunner.rollbackTransaction();
      throw error;
    }
    if (next === undefined) return applied;
    if (await applyConcurrent(queryRunner, schema, next)) applied.push(next.version);
  }
}

/**
 * Runs a concurrent migration outside any transaction, unless another process did meanwhile.
 * The session lock is asked for with pg_try_advisory_lock in a loop, not waited for inside one
 * statement: a statement waiting holds a snapshot, and CREATE INDEX CONCURRENTLY waits for every
 * older snapshot to go, so the two would wait for each other.
 */
async function applyConcurrent(
  queryRunner: QueryRunner,
  schema: string,
  migration: CheckpointMigration,
): Promise<boolean> {
  const sql = checkpointSql(schema);
  const lock = sql.concurrentMigrationLock();
  for (;;) {
    const [row] = (await queryRunner.query(lock.text, lock.values)) as Array<{ locked: boolean }>;
    if (row?.locked === true) break;
    await wait(CONCURRENT_LOCK_POLL_MS);
  }
  try {
    const done = (await queryRunner.query(sql.appliedMigrations().text)) as Array<{
      version: number;
    }>;
    if (done.some((row) => Number(row.version) === migration.version)) return false;
    for (const statement of migration.up(schema, { concurrently: true })) {
      await queryRunner.query(statement);
    }
    const record = sql.recordMigration(migration.version, migration.name);
    await queryRunner.query(record.text, record.values);
    return true;
  } finally {
    const unlock = sql.concurrentMigrationUnlock();
    await queryRunner.query(unlock.text, unlock.values);
  }
}

/**
 * The migrations as TypeORM migration classes, for applications that run the library's schema
 * changes with their own migrations (set `migrationsRun: false` on the module then):
 *
 * ```ts
 * new DataSource({ ..., migrations: [...createCheckpointTypeOrmMigrations('checkpoint'), ...own] })
 * ```
 *
 * Each class records what it applied in the library's own `migration` table, so the module's
 * bootstrap runner and TypeORM never apply one twice.
 */
export function createCheckpointTypeOrmMigrations(
  schema = 'checkpoint',
  options: { concurrentIndexes?: boolean } = {},
): Array<new () => MigrationInterface> {
  assertSchemaName(schema);
  const concurrentIndexes = options.concurrentIndexes === true;
  return checkpointMigrations.map((migration) => {
    // TypeORM wants names that end with a 13-digit timestamp; these are fixed per version.
    const name = `Checkpoint_${schema}_${migration.name.replace(/-/g, '_')}_${1764288000000 + migration.version}`;
    const outside = migration.concurrent === true && concurrentIndexes;
    return class implements MigrationInterface {
      readonly name = name;
      // TypeORM runs this one outside its transaction (migrationsTransactionMode 'each' or
      // 'none'; 'all' refuses any migration that sets it).
      readonly transaction = outside ? false : undefined;
      async up(queryRunner: QueryRunner): Promise<void> {
        if (outside && !queryRunner.isTransactionActive) {
          await applyMissing(queryRunner, schema, migration.version - 1, [], false);
          await applyConcurrent(queryRunner, schema, migration);
          return;
        }
        await applyMissing(queryRunner, schema, migration.version, [], false);
      }
      down(): Promise<void> {
        // Dropping the progress of running jobs is never what a rollback should do silently.
        return Promise.reject(
          new Error(`checkpoint migration ${name} cannot be reverted automatically`),
        );
      }
    };
  });
}

/**
 * Applies, inside the caller's transaction, the migrations up to `upTo` that are not recorded,
 * appending their versions to `applied`. With `stopAtConcurrent`, stops before the first
 * concurrent one and returns it (the caller runs it outside the transaction); without, a
 * concurrent migration runs here in its plain, blocking form.
 */
async function applyMissing(
  queryRunner: QueryRunner,
  schema: string,
  upTo: number,
  applied: number[],
  stopAtConcurrent: boolean,
): Promise<CheckpointMigration | undefined> {
  const sql = checkpointSql(schema);
  const lock = sql.migrationLock();
  await queryRunner.query(lock.text, lock.values);
  await queryRunner.query(sql.createSchema().text);
  await queryRunner.query(sql.createMigrationTable().text);
  const done = (await queryRunner.query(sql.appliedMigrations().text)) as Array<{
    version: number;
  }>;
  const doneVersions = new Set(done.map((row) => Number(row.version)));
  for (const migration of checkpointMigrations) {
    if (migration.version > upTo || doneVersions.has(migration.version)) continue;
    if (migration.concurrent === true && stopAtConcurrent) return migration;
    for (const statement of migration.up(schema, { concurrently: false })) {
      await queryRunner.query(statement);
    }
    const record = sql.recordMigration(migration.version, migration.name);
    await queryRunner.query(record.text, record.values);
    applied.push(migration.version);
  }
  return undefined;
}
