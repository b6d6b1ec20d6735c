import { setTimeout as wait } from 'node:timers/promises';
import { Logger } from '@nestjs/common';
import type { MigrationInterface, QueryRunner } from 'typeorm';
import { createCheckpoint } from './000001-create-checkpoint.js';
import { addRunningEpoch } from './000002-running-epoch.js';
import { sharedColumns } from './000003-shared-columns.js';
import { createRuns } from './000006-runs.js';
import { failedItems } from './000007-failed-items.js';
import { runCounts } from './000008-run-counts.js';
import { listIndexes } from './000009-list-indexes.js';
import { changes } from './000010-changes.js';
import { redriveItems } from './000011-redrive-items.js';
import { failedItemErrorDetail } from './000012-failed-item-error-detail.js';
import { handBacks } from './000013-hand-backs.js';
import { watchers } from './000014-watchers.js';
import { leanAdvance } from './000015-lean-advance.js';
import { leaseIndex } from './000016-lease-index.js';
import { reaperLeader } from './000017-reaper-leader.js';
import { CheckpointMigrationLockError } from '../checkpoint.errors.js';
import { messages } from '../checkpoint.messages.js';
import { checkpointSql } from '../checkpoint.sql.js';
import { assertSchemaName } from '../checkpoint.validation.js';
import type { CheckpointMigration } from './migration.interface.js';

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
  redriveItems,
  failedItemErrorDetail,
  handBacks,
  watchers,
  leanAdvance,
  leaseIndex,
  reaperLeader,
]);

/** How often a process waiting for another's concurrent migration asks for the lock again. */
const CONCURRENT_LOCK_POLL_MS = 250;

/**
 * How the bootstrap's transactional migrations share the tables with live workers (of this
 * build or the previous one). DDL waiting for a table lock makes every later statement on that
 * table queue behind it: one long transaction of a worker would stall all of them, lease
 * renewals included. So each attempt waits at most `lockTimeoutMs` for a lock, then rolls back
 * (nothing applied), logs who held the tables and tries again after a pause in which the queued
 * statements go on; after `patienceMs` it gives up with CheckpointMigrationLockError.
 */
export interface MigrationLockPatience {
  lockTimeoutMs: number;
  patienceMs: number;
}

const DEFAULT_PATIENCE: MigrationLockPatience = { lockTimeoutMs: 2_000, patienceMs: 120_000 };
/** The pause between attempts grows to this. */
const MAX_PAUSE_MS = 5_000;

const logger = new Logger('CheckpointMigrations');

/** A migration's DDL gave way: lock_timeout (55P03) or a deadlock (40P01) with a live worker. */
class MigrationGaveWay extends Error {
  constructor(readonly version: number) {
    super(`checkpoint migration ${version} gave way`);
  }
}

const LOCK_CODES = new Set(['55P03', '40P01']);
function isLockWait(error: unknown): boolean {
  const { code, driverError } = error as { code?: unknown; driverError?: { code?: unknown } };
  return LOCK_CODES.has(String(code ?? driverError?.code));
}

/**
 * Applies the missing migrations of `schema`. The transactional ones go in one transaction,
 * under a transaction-level advisory lock, so that any number of processes booting at once is
 * safe: the first applies them, the others wait and then find nothing to do. A `concurrent`
 * migration ends that transaction and runs on its own (see CheckpointMigration.concurrent); the
 * ones after it follow in a new transaction. Returns the versions it applied, and logs them.
 *
 * `concurrent: false` (a transaction pooler, whose statements outside a transaction may each run
 * on another server connection: no session lock holds across them) applies the concurrent
 * migrations in their plain, blocking form inside the transaction. `lockTimeoutMs` and
 * `patienceMs`: see MigrationLockPatience.
 */
export async function runCheckpointMigrations(
  queryRunner: QueryRunner,
  schema: string,
  options: { concurrent?: boolean } & Partial<MigrationLockPatience> = {},
): Promise<number[]> {
  assertSchemaName(schema);
  const patience = { ...DEFAULT_PATIENCE, ...options };
  const applied: number[] = [];
  const started = Date.now();
  for (let pauseMs = 500; ;) {
    await queryRunner.startTransaction();
    let next: CheckpointMigration | undefined;
    const attempt: number[] = [];
    try {
      next = await applyMissing(
        queryRunner,
        schema,
        Infinity,
        attempt,
        options.concurrent ?? true,
        patience.lockTimeoutMs,
      );
      await queryRunner.commitTransaction();
    } catch (error) {
      await queryRunner.rollbackTransaction();
      if (!(error instanceof MigrationGaveWay)) throw error;
      const blockers = await describeBlockers(queryRunner, schema);
      const waitedMs = Date.now() - started;
      if (waitedMs + pauseMs > patience.patienceMs) {
        throw new CheckpointMigrationLockError(error.version, waitedMs, blockers);
      }
      logger.warn(
        messages.migrationWaiting(error.version, patience.lockTimeoutMs, blockers, pauseMs),
      );
      await wait(pauseMs);
      pauseMs = Math.min(pauseMs * 2, MAX_PAUSE_MS);
      continue;
    }
    applied.push(...attempt);
    if (next !== undefined && (await applyConcurrent(queryRunner, schema, next))) {
      applied.push(next.version);
    }
    if (next === undefined) {
      if (applied.length > 0) {
        logger.log(
          `applied checkpoint migrations ${applied.join(', ')} to schema "${schema}" in ${Date.now() - started} ms`,
        );
      }
      return applied;
    }
  }
}

/** Who holds the library's tables, for the log line: "pid 123 (transaction open 45000 ms: …)". */
async function describeBlockers(queryRunner: QueryRunner, schema: string): Promise<string> {
  const query = checkpointSql(schema).migrationBlockers();
  const rows = (await queryRunner.query(query.text, query.values)) as Array<{
    pid: number;
    ms: string;
    query: string;
  }>;
  if (rows.length === 0) return 'transactions that have ended since';
  return rows
    .map((row) => `pid ${row.pid} (transaction open ${row.ms} ms: ${row.query})`)
    .join(', ');
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
  lockTimeoutMs?: number,
): Promise<CheckpointMigration | undefined> {
  const sql = checkpointSql(schema);
  const lock = sql.migrationLock();
  // Another process's migrations may hold this one as long as they take: no timeout on it.
  await queryRunner.query(lock.text, lock.values);
  await queryRunner.query(sql.createSchema().text);
  await queryRunner.query(sql.createMigrationTable().text);
  const done = (await queryRunner.query(sql.appliedMigrations().text)) as Array<{
    version: number;
  }>;
  const doneVersions = new Set(done.map((row) => Number(row.version)));
  if (lockTimeoutMs !== undefined) {
    const timeout = sql.migrationLockTimeout(lockTimeoutMs);
    await queryRunner.query(timeout.text, timeout.values);
  }
  for (const migration of checkpointMigrations) {
    if (migration.version > upTo || doneVersions.has(migration.version)) continue;
    if (migration.concurrent === true && stopAtConcurrent) return migration;
    try {
      for (const statement of migration.up(schema, { concurrently: false })) {
        await queryRunner.query(statement);
      }
    } catch (error) {
      if (lockTimeoutMs !== undefined && isLockWait(error))
        throw new MigrationGaveWay(migration.version);
      throw error;
    }
    const record = sql.recordMigration(migration.version, migration.name);
    await queryRunner.query(record.text, record.values);
    applied.push(migration.version);
  }
  return undefined;
}
