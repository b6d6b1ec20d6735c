import { Logger } from '@nestjs/common';
import type { PoolClient } from 'pg';
import type { CheckpointSql, Query } from './checkpoint.sql.js';

/** How long the library's statements may wait (module options statementTimeoutMs, stallWarnMs). */
export interface StatementLimits {
  statementTimeoutMs: number;
  stallWarnMs: number;
}

/** One statement in flight, as the watchdog sees it. */
export interface WatchedStatement {
  operation: string;
  key: string | undefined;
  /** The backend running it (pg's processID of the connection). */
  pid: number | undefined;
  started: number;
  timeoutMs: number;
  warned: boolean;
  cancelled: boolean;
}

/**
 * The client-side watchdog of the library's statements: past `stallWarnMs` it logs the
 * operation, the key and the sessions blocking it; past `statementTimeoutMs` it cancels the
 * statement (pg_cancel_backend), whose caller then gets a CheckpointStoreError. It sends no
 * statement of its own until something stalls.
 *
 * One timer per process sweeps the statements in flight, a few times per `stallWarnMs`, instead
 * of two timers per statement: a statement only joins and leaves a set. The timer runs only
 * while statements are in flight.
 */
export class StatementWatchdog {
  private readonly logger = new Logger('Checkpoint');
  private readonly inFlight = new Set<WatchedStatement>();
  private sweeper?: NodeJS.Timeout;
  private readonly sweepEveryMs: number;

  constructor(
    private readonly limits: StatementLimits,
    private readonly sql: CheckpointSql,
    private readonly sideStatement: <R>(query: Query) => Promise<R[]>,
    private readonly backends: { byPid: boolean },
  ) {
    // Late by at most a quarter of the shorter limit (and never more than a second).
    const shorter = Math.min(limits.stallWarnMs, limits.statementTimeoutMs);
    this.sweepEveryMs = Math.max(10, Math.min(1_000, Math.floor(shorter / 4)));
  }

  start(operation: string, key: string | undefined, client: PoolClient): WatchedStatement {
    const statement: WatchedStatement = {
      operation,
      key,
      pid: this.backends.byPid
        ? ((client as unknown as { processID?: number | null }).processID ?? undefined)
        : undefined,
      started: Date.now(),
      timeoutMs: this.limits.statementTimeoutMs,
      warned: false,
      cancelled: false,
    };
    this.inFlight.add(statement);
    this.sweeper ??= setInterval(() => this.sweep(), this.sweepEveryMs).unref();
    return statement;
  }

  stop(statement: WatchedStatement): void {
    this.inFlight.delete(statement);
  }

  private sweep(): void {
    if (this.inFlight.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
      return;
    }
    const now = Date.now();
    for (const statement of this.inFlight) {
      const waited = now - statement.started;
      const { pid } = statement;
      // Without its backend's pid a statement cannot be cancelled, only reported.
      if (waited >= this.limits.statementTimeoutMs && pid !== undefined && !statement.cancelled)
        this.cancel(statement, pid, waited);
      else if (waited >= this.limits.stallWarnMs && !statement.warned) this.warn(statement, waited);
    }
  }

  private describe(statement: WatchedStatement): string {
    const { operation, key } = statement;
    return `checkpoint ${operation}${key === undefined ? '' : ` of key "${key}"`}`;
  }

  private warn(statement: WatchedStatement, waited: number): void {
    statement.warned = true;
    const { pid } = statement;
    void this.blockers(pid).then((blockers) =>
      this.logger.warn(
        `${this.describe(statement)} has waited ${waited} ms` +
          (pid === undefined ? '' : ` (backend ${pid})`) +
          (blockers.length > 0 ? `, blocked by backend ${blockers.join(', ')}` : '') +
          `; it is cancelled after ${this.limits.statementTimeoutMs} ms (option statementTimeoutMs)`,
      ),
    );
  }

  private cancel(statement: WatchedStatement, pid: number, waited: number): void {
    statement.cancelled = true;
    this.logger.error(
      `${this.describe(statement)} was cancelled after ${waited} ms (option statementTimeoutMs)`,
    );
    this.sideStatement(this.sql.cancelBackend(pid)).catch((error: Error) =>
      this.logger.warn(`could not cancel backend ${pid}: ${error.message}`),
    );
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
}
