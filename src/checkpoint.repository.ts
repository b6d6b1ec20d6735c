import { Logger } from '@nestjs/common';
import type { PoolClient, QueryResultRow } from 'pg';
import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import type { CheckpointControl, CheckpointState } from './checkpoint.constants.js';
import { CheckpointStoreError } from './checkpoint.errors.js';
import { messages } from './checkpoint.messages.js';
import type { CheckpointRecord } from './checkpoint.interfaces.js';
import type { CheckpointSql, Query } from './checkpoint.sql.js';

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
}

export interface QueryOutcome<R> {
  rows: R[];
  rowCount: number;
}

/** How long the library's statements may wait (module options statementTimeoutMs, stallWarnMs). */
export interface StatementLimits {
  statementTimeoutMs: number;
  stallWarnMs: number;
}

/**
 * Runs the statements of `checkpoint.sql.ts` through the host's TypeORM DataSource: on a given
 * query runner (a transaction, or the process's dedicated session), or on a pooled connection
 * borrowed for one statement. Every database failure becomes a CheckpointStoreError.
 *
 * Every statement has a watchdog on the client side (two timers, no extra statement): past
 * `stallWarnMs` it logs the operation, the key and the sessions blocking it; past
 * `statementTimeoutMs` it cancels the statement, whose caller then gets a CheckpointStoreError.
 */
export class CheckpointRepository {
  private readonly logger = new Logger('Checkpoint');

  constructor(
    private readonly dataSource: DataSource,
    readonly sql: CheckpointSql,
    private readonly limits: StatementLimits = { statementTimeoutMs: 60_000, stallWarnMs: 5_000 },
  ) {}

  async run<R = CheckpointRow>(
    operation: string,
    key: string | undefined,
    query: Query,
    on?: EntityManager | QueryRunner,
  ): Promise<QueryOutcome<R>> {
    const given = on === undefined ? undefined : 'connect' in on ? on : on.queryRunner;
    const runner = given ?? this.dataSource.createQueryRunner();
    let watchdog: Watchdog | undefined;
    try {
      const client = (await runner.connect()) as PoolClient;
      watchdog = this.watch(operation, key, client);
      if (query.name !== undefined) {
        // TypeORM's query() cannot name a statement: send it on the connection behind the
        // runner, and log it as TypeORM would, so that loggers still see every statement.
        this.dataSource.logger.logQuery(query.text, query.values, runner);
        const result = await client.query<QueryResultRow>({
          name: query.name,
          text: query.text,
          values: query.values,
        });
        return { rows: result.rows as R[], rowCount: result.rowCount ?? result.rows.length };
      }
      const result = await runner.query(query.text, query.values, true);
      const rows = (result.records ?? []) as R[];
      return { rows, rowCount: result.affected ?? rows.length };
    } catch (error) {
      if (watchdog?.cancelled === true) {
        throw new CheckpointStoreError(
          operation,
          key,
          new Error(messages.statementTimedOut(this.limits.statementTimeoutMs), { cause: error }),
        );
      }
      throw new CheckpointStoreError(operation, key, error);
    } finally {
      watchdog?.stop();
      if (given === undefined) await runner.release().catch(() => undefined);
    }
  }

  /** Starts the stall and timeout timers of one statement on `client`. */
  private watch(operation: string, key: string | undefined, client: PoolClient): Watchdog {
    const pid = (client as unknown as { processID?: number | null }).processID ?? undefined;
    const started = Date.now();
    const watchdog: Watchdog = { cancelled: false, stop: () => undefined };
    const what = `checkpoint ${operation}${key === undefined ? '' : ` of key "${key}"`}`;
    const stall = setTimeout(() => {
      void this.blockers(pid).then((blockers) =>
        this.logger.warn(
          `${what} has waited ${Date.now() - started} ms` +
            (pid === undefined ? '' : ` (backend ${pid})`) +
            (blockers.length > 0 ? `, blocked by backend ${blockers.join(', ')}` : '') +
            `; it is cancelled after ${this.limits.statementTimeoutMs} ms (option statementTimeoutMs)`,
        ),
      );
    }, this.limits.stallWarnMs);
    const timeout = setTimeout(() => {
      if (pid === undefined) return;
      watchdog.cancelled = true;
      this.logger.error(
        `${what} was cancelled after ${Date.now() - started} ms (option statementTimeoutMs)`,
      );
      this.sideStatement(this.sql.cancelBackend(pid)).catch((error: Error) =>
        this.logger.warn(`could not cancel backend ${pid}: ${error.message}`),
      );
    }, this.limits.statementTimeoutMs);
    stall.unref();
    timeout.unref();
    watchdog.stop = () => {
      clearTimeout(stall);
      clearTimeout(timeout);
    };
    return watchdog;
  }

  private async blockers(pid: number | undefined): Promise<number[]> {
    if (pid === undefined) return [];
    try {
      const rows = await this.sideStatement<{ pids: number[] }>(this.sql.blockingPids(pid));
      return rows[0]?.pids ?? [];
    } catch {
      return [];
    }
  }

  /** A statement of the watchdog itself, on a pooled connection, without a watchdog of its own. */
  private async sideStatement<R>(query: Query): Promise<R[]> {
    return this.dataSource.query<R[]>(query.text, query.values);
  }
}

interface Watchdog {
  cancelled: boolean;
  stop: () => void;
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
    lastUpdate: row.updated_at,
    createdAt: row.created_at,
    control: row.control,
    runId: row.run_id,
    queue: row.queue,
    jobId: row.job_id,
    runChunk: row.run_id === null ? null : Number(row.run_chunk ?? 0),
  };
}
