// Reading runs: one run with its progress, a page of them, a run's chunks, and the watch that
// follows a run from any process.
import type { PgBoss } from 'pg-boss';
import { finalize, Observable, shareReplay } from 'rxjs';
import type { EntityManager } from 'typeorm';
import { bossSchemaOf } from '../boss/boss-schema.js';
import { RUN_NOTIFY_PREFIX, RUN_STATES, type RunState } from '../checkpoint.constants.js';
import { CheckpointValidationError } from '../checkpoint.errors.js';
import { CheckpointRepository } from '../checkpoint.repository.js';
import { CheckpointSession } from '../checkpoint.session.js';
import { decodeCursor, TIME_AND_KEY, toPage, type CheckpointPage } from '../page-cursor.js';
import { assertQueueName, assertRunId, chunkJobId, isPositiveInteger } from './run-ids.js';
import { WATCH_POLL_MS } from './runs.constants.js';
import { CheckpointRunNotFoundError } from './runs.errors.js';
import type { ListRunsOptions, Run, RunChunk } from './runs.interfaces.js';
import { runMessages } from './runs.messages.js';
import type { RunsSql } from './runs.sql.js';

/**
 * The states in which `watch` completes. A failed run changes again only when someone acts (a
 * redrive, a direct run started again, a job retried by hand): watch it again then.
 */
const FINAL_STATES: ReadonlySet<RunState> = new Set([
  RUN_STATES.completed,
  RUN_STATES.cancelled,
  RUN_STATES.failed,
]);

/** A row of `progress` / `list` in runs.sql.ts (bigint columns arrive as strings). */
export interface RunRow {
  id: string;
  queue: string;
  /** The state as `runState` in runs.sql.ts reads it (the row's `state` is what was decided). */
  run_state: RunState;
  mode: 'queued' | 'direct';
  total_items: string;
  chunk_count: number;
  chunk_size: number;
  metadata: Record<string, unknown> | null;
  item_ms: number | null;
  created_at: Date;
  completed_at: Date | null;
  completed_hook_at: Date | null;
  items_done: string;
  items_skipped: string;
  chunks_done: number;
  chunks_running: number;
  chunks_failed: number;
  chunks_pending: number;
  chunks_cancelled: number;
  chunks_started: number;
  last_update: Date;
}

/** The reads of runs (CheckpointRuns hands over to it). @internal */
export class RunReads {
  private readonly watchers = new Map<string, Observable<Run>>();

  /** The schema of pg-boss's job table (a run is failed only when no chunk job will run). */
  private readonly bossSchema: Promise<string | null>;

  constructor(
    private readonly sql: RunsSql,
    private readonly repository: CheckpointRepository,
    private readonly session: CheckpointSession,
    boss: PgBoss | null,
  ) {
    this.bossSchema = boss === null ? Promise.resolve(null) : bossSchemaOf(boss);
    // Read when first needed; a failure surfaces there, not as an unhandled rejection.
    this.bossSchema.catch(() => undefined);
  }

  async get(id: string): Promise<Run | null> {
    assertRunId(id);
    return this.read(id);
  }

  /** The run as get() reads it, inside `manager`'s transaction when one is given. */
  async read(id: string, manager?: EntityManager): Promise<Run | null> {
    const query = this.sql.progress(id, await this.bossSchema);
    const { rows } = await this.repository.run<RunRow>('run-get', id, query, manager);
    return rows[0] === undefined ? null : toRun(rows[0]);
  }

  async require(id: string): Promise<Run> {
    const run = await this.get(id);
    if (run === null) throw new CheckpointRunNotFoundError(id);
    return run;
  }

  async list(filter: ListRunsOptions): Promise<CheckpointPage<Run>> {
    const limit = filter.limit ?? 100;
    if (!isPositiveInteger(limit)) {
      throw new CheckpointValidationError(runMessages.badFilter('limit', limit));
    }
    if (filter.queue !== undefined) assertQueueName(filter.queue);
    const after =
      filter.after === undefined ? null : decodeCursor('runs.list', filter.after, TIME_AND_KEY);
    const state = filter.state ?? null;
    if (state !== null && !(Object.values(RUN_STATES) as unknown[]).includes(state)) {
      throw new CheckpointValidationError(runMessages.badFilter('state', state));
    }
    const { rows } = await this.repository.run<RunRow & { page_at: string }>(
      'run-list',
      undefined,
      this.sql.list(filter.queue ?? null, state, limit, after, await this.bossSchema),
    );
    return toPage(rows, limit, (row) => [row.page_at, row.id], toRun);
  }

  async chunks(id: string): Promise<RunChunk[]> {
    assertRunId(id);
    const { rows } = await this.repository.run<{
      key: string;
      job_id: string;
      run_chunk: number;
      state: string;
      current_index: string;
      total_items: string | null;
      attempt: number;
      hand_backs: number;
      result: unknown;
      error: unknown;
    }>('run-chunks', id, this.sql.chunks(id));
    return rows.map((row) => ({
      index: row.run_chunk,
      key: row.key,
      jobId: row.job_id,
      state: row.state,
      processedItems: Number(row.current_index),
      totalItems: row.total_items === null ? null : Number(row.total_items),
      attempt: row.attempt,
      handBacks: row.hand_backs,
      result: row.result,
      error: row.error,
    }));
  }

  watch(id: string): Observable<Run> {
    assertRunId(id);
    const existing = this.watchers.get(id);
    if (existing !== undefined) return existing;
    const shared: Observable<Run> = this.follow(id).pipe(
      finalize(() => {
        if (this.watchers.get(id) === shared) this.watchers.delete(id);
      }),
      shareReplay({ bufferSize: 1, refCount: true }),
    );
    this.watchers.set(id, shared);
    return shared;
  }

  private follow(id: string): Observable<Run> {
    return new Observable<Run>((subscriber) => {
      let closed = false;
      let busy = false;
      let again = false;
      let lastSeen = '';
      let keys: Set<string> | undefined;
      let stop: (() => void) | undefined;
      let timer: NodeJS.Timeout | undefined;
      const refresh = async (): Promise<void> => {
        if (busy) {
          again = true;
          return;
        }
        busy = true;
        try {
          do {
            again = false;
            const run = await this.get(id);
            if (closed) return;
            if (run === null) {
              subscriber.error(new CheckpointRunNotFoundError(id));
              return;
            }
            // Chunk keys follow from the run's id (deterministic job ids): no query for them.
            keys ??= new Set(
              Array.from({ length: run.chunkCount }, (_, i) => `${run.queue}:${chunkJobId(id, i)}`),
            );
            const c = run.chunks;
            const seen = `${run.state}:${run.processedItems}:${c.completed}:${c.running}:${c.failed}:${c.cancelled}`;
            if (seen !== lastSeen) {
              lastSeen = seen;
              subscriber.next(run);
            }
            if (FINAL_STATES.has(run.state)) {
              subscriber.complete();
              return;
            }
          } while (again && !closed);
        } catch (error) {
          subscriber.error(error);
        } finally {
          busy = false;
        }
      };
      const own = RUN_NOTIFY_PREFIX + id;
      this.session
        .subscribe((changed) => {
          if (changed === own || keys?.has(changed) === true) void refresh();
        })
        .then(
          (unsubscribe) => {
            stop = unsubscribe;
            if (closed) return unsubscribe();
            timer = setInterval(() => void refresh(), WATCH_POLL_MS).unref();
            void refresh();
          },
          (error: unknown) => subscriber.error(error),
        );
      return () => {
        closed = true;
        clearInterval(timer);
        stop?.();
      };
    });
  }
}

export function toRun(row: RunRow): Run {
  const total = Number(row.total_items);
  const done = Number(row.items_done);
  const state = row.run_state;
  const seconds = (row.last_update.getTime() - row.created_at.getTime()) / 1000;
  const itemsPerSecond = done > 0 && seconds > 0 ? done / seconds : null;
  return {
    id: row.id,
    queue: row.queue,
    state,
    mode: row.mode,
    totalItems: total,
    processedItems: done,
    skippedItems: Number(row.items_skipped),
    percentage: total > 0 ? Math.floor((done / total) * 100) : 0,
    chunkSize: row.chunk_size,
    chunkCount: row.chunk_count,
    chunks: {
      completed: row.chunks_done,
      running: row.chunks_running,
      failed: row.chunks_failed,
      pending: row.chunks_pending,
      cancelled: row.chunks_cancelled,
      started: row.chunks_started,
    },
    itemsPerSecond,
    etaSeconds:
      state === RUN_STATES.completed
        ? 0
        : itemsPerSecond === null
          ? null
          : Math.max(0, total - done) / itemsPerSecond,
    itemMs: row.item_ms,
    metadata: row.metadata,
    createdAt: row.created_at,
    lastUpdate: row.last_update,
    completedAt: row.completed_at,
    completedHookAt: row.completed_hook_at,
  };
}
