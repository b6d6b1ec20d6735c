import type { MigrationInterface, QueryRunner } from 'typeorm';
import { createCheckpoint } from './000001-create-checkpoint.js';
import { addRunningEpoch } from './000002-running-epoch.js';
import { sharedColumns } from './000003-shared-columns.js';
import { createRuns } from './000006-runs.js';
import { failedItems } from './000007-failed-items.js';
import { checkpointSql } from '../checkpoint.sql.js';
import { assertSchemaName } from '../checkpoint.validation.js';

/** One numbered schema change. `up` returns its DDL statements for the given schema. */
export interface CheckpointMigration {
  version: number;
  name: string;
  up(schema: string): string[];
}

/** Every migration of the package, in order. New ones are appended, never edited. */
export const checkpointMigrations: readonly CheckpointMigration[] = Object.freeze([
  createCheckpoint,
  addRunningEpoch,
  sharedColumns,
  createRuns,
  failedItems,
]);

/**
 * Applies the missing migrations of `schema` in one transaction, under a transaction-level
 * advisory lock, so that any number of processes booting at once is safe: the first applies
 * them, the others wait and then find nothing to do. Returns the versions it applied.
 */
export async function runCheckpointMigrations(
  queryRunner: QueryRunner,
  schema: string,
): Promise<number[]> {
  assertSchemaName(schema);
  await queryRunner.startTransaction();
  try {
    const applied = await applyMissing(queryRunner, schema, Infinity);
    await queryRunner.commitTransaction();
    return applied;
  } catch (error) {
    await queryRunner.rollbackTransaction();
    throw error;
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
): Array<new () => MigrationInterface> {
  assertSchemaName(schema);
  return checkpointMigrations.map((migration) => {
    // TypeORM wants names that end with a 13-digit timestamp; these are fixed per version.
    const name = `Checkpoint_${schema}_${migration.name.replace(/-/g, '_')}_${1764288000000 + migration.version}`;
    return class implements MigrationInterface {
      readonly name = name;
      async up(queryRunner: QueryRunner): Promise<void> {
        await applyMissing(queryRunner, schema, migration.version);
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

/** Applies, inside the caller's transaction, the migrations up to `upTo` that are not recorded. */
async function applyMissing(
  queryRunner: QueryRunner,
  schema: string,
  upTo: number,
): Promise<number[]> {
  const sql = checkpointSql(schema);
  const lock = sql.migrationLock();
  await queryRunner.query(lock.text, lock.values);
  await queryRunner.query(sql.createSchema().text);
  await queryRunner.query(sql.createMigrationTable().text);
  const done = (await queryRunner.query(sql.appliedMigrations().text)) as Array<{
    version: number;
  }>;
  const doneVersions = new Set(done.map((row) => Number(row.version)));
  const applied: number[] = [];
  for (const migration of checkpointMigrations) {
    if (migration.version > upTo || doneVersions.has(migration.version)) continue;
    for (const statement of migration.up(schema)) await queryRunner.query(statement);
    const record = sql.recordMigration(migration.version, migration.name);
    await queryRunner.query(record.text, record.values);
    applied.push(migration.version);
  }
  return applied;
}
