import type { Pool, PoolClient, QueryResult, QueryResultRow } from 'pg';
import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import type { CheckpointControl, CheckpointState } from './checkpoint.constants.js';
import { CheckpointStoreError, isConnectionFailure } from './checkpoint.errors.js';
import { messages } from './checkpoint.messages.js';
import type { CheckpointRecord } from './checkpoint.interfaces.js';
import type { Pooling } from './checkpoint.options.js';
import type { CheckpointSql, Query } from './checkpoint.sql.js';
import {
  StatementWatchdog,
  type StatementLimits,
  type WatchedStatement,
} from './statement-watchdog.js';

/** A row of the checkpoint table as the pg driver returns it (bigint columns arrive as strings). */
export interface CheckpointRow {
  key: string;
  state: CheckpointState;
  epoch: string;
  owner: string | null;
  dispatch: number | null;
  fingerprint: string | null;
  current_batch_index: string;
  current_index: string;
  processed_batches: string;
  total_batches: string;
  total_items: string | null;
  cursor: unknown;
  intermediate_result: unknown;
  metadata: Record<string, unknown> | null;
  result: unknown;
  error: unknown;
  attempt: number;
  attempt_started_at: Date | null;
  attempt_start_index: string;
  created_at: Date;
  updated_at: Date;
  control: CheckpointControl | null;
  run_id: string | null;
  queue: string | null;
  job_id: string | null;
  /** The chunk's index in its run (migration 6); absent before it. */
  run_chunk?: number | null;
  skipped_items: string;
  owner_pid: number | null;
  owner_started: Date | null;
  lease_expires_at: Date | null;
  /** Migration 7 (failed items). */
  redrive_requested_at: Date | null;
  /** Migration 13: pickups after a hand-back that spent no retry. */
  hand_backs?: number;
}

export interface QueryOutcome<R> {
  rows: R[];
  rowCount: number;
}

/**
 * Runs the statements of `checkpoint.sql.ts` through the host's TypeORM DataSource: on a given
 * query runner (a transaction, or the process's dedicated session), or on a connection borrowed
 * from the DataSource's own pool for one statement. Every database failure becomes a
 * CheckpointStoreError.
 *
 * Statements go straight to the pg client behind the runner or the pool, as named (prepared)
 * statements where the SQL names them, except through a transaction pooler, where the next
 * transaction may run on a server connection that another client prepared on; and are logged to the DataSource's logger as TypeORM
 * logs its own. A borrowed connection is taken from the pool directly rather than through a
 * TypeORM QueryRunner: a runner costs several objects and listeners per statement, a measurable
 * share of a batch's client CPU when many jobs advance at once (bench section 5).
 */
export class CheckpointRepository {
  private readonly watchdog: StatementWatchdog;
  private readonly unnamed: boolean;

  constructor(
    private readonly dataSource: DataSource,
    readonly sql: CheckpointSql,
    limits: StatementLimits = { statementTimeoutMs: 60_000, stallWarnMs: 5_000 },
    readonly pooling: Pooling = 'none',
  ) {
    this.unnamed = pooling === 'transaction';
    // Through a pooler a client's backend pid is the pooler's own: nothing to cancel by it.
    this.watchdog = new StatementWatchdog(limits, sql, (query) => this.sideStatement(query), {
      byPid: pooling === 'none',
    });
  }

  async run<R = CheckpointRow>(
    operation: string,
    key: string | undefined,
    query: Query,
    on?: EntityManager | QueryRunner,
  ): Promise<QueryOutcome<R>> {
    const given = on === undefined ? undefined : 'connect' in on ? on : on.queryRunner;
    if (given !== undefined) assertUsable(operation, key, given);
    let borrowed: PoolClient | undefined;
    let watched: WatchedStatement | undefined;
    let lostConnection = false;
    try {
      let client: PoolClient;
      if (given === undefined) {
        client = borrowed = await this.pool().connect();
        // pg-pool drops its own error listener while a client is out: a connection that ends
        // after its statement failed (a database restart) would otherwise crash the process.
        borrowed.on('error', ignoreConnectionError);
      } else {
        client = (await given.connect()) as PoolClient;
      }
      watched = this.watchdog.start(operation, key, client);
      this.dataSource.logger.logQuery(query.text, query.values, given);
      const result = lastResult(await client.query<QueryResultRow>(this.asSent(query)));
      return { rows: result.rows as R[], rowCount: result.rowCount ?? result.rows.length };
    } catch (error) {
      lostConnection = isConnectionFailure(error);
      throw storeError(operation, key, error, watched);
    } finally {
      if (watched !== undefined) this.watchdog.stop(watched);
      if (borrowed !== undefined) {
        // A connection whose backend said FATAL may not have closed yet: the pool would hand
        // it to the next statement as healthy, so it is destroyed instead. Released first: the
        // pool puts its idle listener back before ours goes.
        borrowed.release(lostConnection);
        borrowed.off('error', ignoreConnectionError);
      }
    }
  }

  /**
   * Runs `query` in `runner`'s transaction and commits it, the COMMIT sent right behind the
   * statement instead of after its answer: one round trip where pg pipelines (its pipeline mode,
   * switched on for the two), two back to back otherwise. A statement that must keep the
   * transaction from committing has to fail, not match no row: PostgreSQL answers a COMMIT
   * after an error by rolling back. The statement's failure is thrown before the commit's.
   */
  async runAndCommit<R>(
    operation: string,
    key: string,
    query: Query,
    runner: QueryRunner,
  ): Promise<QueryOutcome<R>> {
    const client = await clientOf(operation, key, runner);
    const watched = this.watchdog.start(operation, key, client);
    this.dataSource.logger.logQuery(query.text, query.values, runner);
    const pipelining = startPipeline(client);
    try {
      const sent = client.query<QueryResultRow>(this.asSent(query)).then(
        (result) => ({ result }),
        (error: unknown) => ({ error }),
      );
      // TypeORM's own commit (its subscribers, its transaction state), queued behind the query.
      const committed = runner.commitTransaction().then(
        () => undefined,
        (error: unknown) => ({ error }),
      );
      const [outcome, commit] = await Promise.all([sent, committed]);
      if ('error' in outcome) throw storeError(operation, key, outcome.error, watched);
      if (commit !== undefined) throw new CheckpointStoreError('commit batch', key, commit.error);
      const result = outcome.result;
      return { rows: result.rows as R[], rowCount: result.rowCount ?? result.rows.length };
    } finally {
      if (pipelining) stopPipeline(client);
      this.watchdog.stop(watched);
    }
  }

  /**
   * Whether commitAndBeginNext can be used: not through a transaction pooler (no statement
   * outlives a transaction there), nor with an isolation level on the DataSource (TypeORM sets
   * it by a statement of its own after each start).
   */
  get beginsWithCommit(): boolean {
    return !this.unnamed && this.dataSource.options.isolationLevel === undefined;
  }

  /**
   * Commits `runner`'s transaction with `statement` and begins the next one in the same message
   * (ownership.sql.ts, advanceCommitBegin). As TypeORM sees it, the runner never left its
   * transaction: it carries on as the next batch's. TypeORM's subscribers hear the commit and
   * the start as they would from its own. A failure leaves the runner's transaction to be
   * rolled back (a fenced advance aborted it; a failed COMMIT ended it already, and a
   * ROLLBACK then only warns).
   */
  async commitAndBeginNext<R>(
    operation: string,
    key: string,
    statement: { prepare: string; text: string },
    runner: QueryRunner,
  ): Promise<QueryOutcome<R>> {
    const client = await clientOf(operation, key, runner);
    const watched = this.watchdog.start(operation, key, client);
    try {
      const prepared = preparedOn.get(client) ?? new Set<string>();
      if (!prepared.has(statement.prepare)) {
        // Once per connection, inside the batch's transaction; an SQL PREPARE outlives it.
        await client.query(statement.prepare);
        preparedOn.set(client, prepared.add(statement.prepare));
      }
      await runner.broadcaster.broadcast('BeforeTransactionCommit');
      this.dataSource.logger.logQuery(statement.text, [], runner);
      const outcome = await client.query<QueryResultRow>(statement.text);
      await runner.broadcaster.broadcast('AfterTransactionCommit');
      await runner.broadcaster.broadcast('BeforeTransactionStart');
      await runner.broadcaster.broadcast('AfterTransactionStart');
      // The answers of the message's three statements: the first is the advance's.
      const result = isResultList(outcome) ? outcome[0] : outcome;
      return { rows: result.rows as R[], rowCount: result.rowCount ?? result.rows.length };
    } catch (error) {
      throw storeError(operation, key, error, watched);
    } finally {
      this.watchdog.stop(watched);
    }
  }

  /** Through a transaction pooler a statement goes unnamed: no server connection keeps it. */
  private asSent(query: Query): Query {
    return this.unnamed ? { text: query.text, values: query.values } : query;
  }

  /** The pg pool of the host's DataSource (TypeORM's PostgresDriver keeps it as `master`). */
  private pool(): Pool {
    const pool = (this.dataSource.driver as { master?: Pool }).master;
    if (pool === undefined) throw new Error(messages.dataSourceNotConnected());
    return pool;
  }

  /** A statement of the watchdog itself, on a pooled connection, without a watchdog of its own. */
  private async sideStatement<R>(query: Query): Promise<R[]> {
    return this.dataSource.query<R[]>(query.text, query.values);
  }
}

/** The pg client behind `runner`, checked usable; a failure to get it is a store error. */
async function clientOf(operation: string, key: string, runner: QueryRunner): Promise<PoolClient> {
  assertUsable(operation, key, runner);
  try {
    return (await runner.connect()) as PoolClient;
  } catch (error) {
    throw new CheckpointStoreError(operation, key, error);
  }
}

/** What a failed statement throws: the watchdog's cancel says so, rather than pg's bare error. */
function storeError(
  operation: string,
  key: string | undefined,
  error: unknown,
  watched: WatchedStatement | undefined,
): CheckpointStoreError {
  const cause =
    watched?.cancelled === true
      ? new Error(messages.statementTimedOut(watched.timeoutMs), { cause: error })
      : error;
  return new CheckpointStoreError(operation, key, cause);
}

/**
 * Refuses a runner that is back in the pool, maybe another caller's now: never send on it.
 * TypeORM also releases a runner whose connection failed, and leaves its transaction marked
 * open: that is the database going away (08003, which a decorated method rides out), not a
 * transaction that ended.
 */
function assertUsable(operation: string, key: string | undefined, runner: QueryRunner): void {
  if (!runner.isReleased) return;
  const cause = runner.isTransactionActive
    ? Object.assign(new Error(messages.managerConnectionLost()), { code: '08003' })
    : new Error(messages.managerReleased());
  throw new CheckpointStoreError(operation, key, cause);
}

/**
 * What each connection has prepared for commitAndBeginNext (by the PREPARE's text, which names
 * the schema), whichever module's repository prepared it.
 */
const preparedOn = new WeakMap<PoolClient, Set<string>>();

/** A pg client's pipeline switch (the documented `pipeline` option; absent in older pg). */
type Pipelining = { pipeline?: unknown; readyForQuery?: unknown };

/**
 * Switches an idle client into pg's pipeline mode (the `pipeline` option, which pg reads on
 * every send): the queries sent next go out without waiting for the answers of the ones before.
 * Returns whether it did; with a pg without pipelining, or a client already pipelining, the
 * queries still run in order, one round trip each.
 */
function startPipeline(client: PoolClient): boolean {
  const switchable = client as unknown as Pipelining;
  if (switchable.pipeline !== false || switchable.readyForQuery !== true) return false;
  switchable.pipeline = true;
  return true;
}

function stopPipeline(client: PoolClient): void {
  (client as unknown as Pipelining).pipeline = false;
}

/**
 * Listens for the error a borrowed client emits when its connection ends: the statement on it
 * already failed with that error (or will), and the pool discards the client on release.
 */
function ignoreConnectionError(): void {}

/** The result of the last statement: a text of several (the session's LISTEN) gives one each. */
function lastResult(outcome: QueryResult | QueryResult[]): QueryResult {
  if (!isResultList(outcome)) return outcome;
  return outcome[outcome.length - 1] ?? { command: '', rowCount: 0, oid: 0, fields: [], rows: [] };
}

function isResultList(outcome: QueryResult | QueryResult[]): outcome is QueryResult[] {
  return Array.isArray(outcome);
}

/** Maps a row to the public record shape. */
export function toRecord(row: CheckpointRow): CheckpointRecord {
  return {
    key: row.key,
    state: row.state,
    epoch: Number(row.epoch),
    owner: row.owner,
    attempt: row.attempt,
    fingerprint: row.fingerprint,
    currentBatchIndex: Number(row.current_batch_index),
    currentIndex: Number(row.current_index),
    processedBatches: Number(row.processed_batches),
    totalBatches: Number(row.total_batches),
    totalItems: row.total_items === null ? null : Number(row.total_items),
    cursor: row.cursor,
    intermediateResult: row.intermediate_result,
    metadata: row.metadata,
    result: row.result,
    error: row.error,
    skippedItems: Number(row.skipped_items),
    redriveRequestedAt: row.redrive_requested_at ?? null,
    handBacks: row.hand_backs ?? 0,
    lastUpdate: row.updated_at,
    createdAt: row.created_at,
    control: row.control,
    runId: row.run_id,
    queue: row.queue,
    jobId: row.job_id,
    runChunk: row.run_id === null ? null : Number(row.run_chunk ?? 0),
  };
}
