import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnModuleInit,
} from '@nestjs/common';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { createHash, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { PgBoss } from 'pg-boss';
import { finalize, Observable, shareReplay } from 'rxjs';
import type { DataSource, EntityManager } from 'typeorm';
import { bossDb, CheckpointQueues } from '../boss/checkpoint-queues.js';
import {
  CHECKPOINT_BOSS,
  CHECKPOINT_DATA_SOURCE,
  CHECKPOINT_OPTIONS,
} from '../checkpoint.constants.js';
import {
  CheckpointConfigError,
  CheckpointStoreError,
  CheckpointValidationError,
} from '../checkpoint.errors.js';
import type { ResolvedCheckpointOptions } from '../checkpoint.options.js';
import { CheckpointRepository } from '../checkpoint.repository.js';
import { CheckpointService } from '../checkpoint.service.js';
import { CheckpointSession } from '../checkpoint.session.js';
import { toJson } from '../checkpoint.validation.js';
import { decodeCursor, TIME_AND_KEY, toPage, type CheckpointPage } from '../page-cursor.js';
import {
  MAX_RUN_ID_LENGTH,
  ON_RUN_COMPLETED_METADATA,
  RUN_NOTIFY_PREFIX,
  RUN_STATES,
  SWEEP_INTERVAL_MS,
  WATCH_POLL_MS,
  WORKER_ALIVE_SECONDS,
  WORKER_BEAT_MS,
  type RunState,
} from './runs.constants.js';
import { CheckpointRunNotFoundError } from './runs.errors.js';
import type {
  ListRunsOptions,
  PlanRunOptions,
  Run,
  RunChunk,
  RunChunkData,
  RunPlan,
  StartedRun,
  StartRunOptions,
} from './runs.interfaces.js';
import { runMessages } from './runs.messages.js';
import { chunkSlices, planChunks } from './runs.plan.js';
import { runsSql, type RunsSql } from './runs.sql.js';

const DEFAULT_TARGET_CHUNK_MS = 60_000;
const DEFAULT_MAX_CHUNK_SIZE = 50_000;
/** States after which a run never changes again (a failed direct run may be started again). */
const FINAL_STATES: ReadonlySet<RunState> = new Set([
  RUN_STATES.completed,
  RUN_STATES.cancelled,
  RUN_STATES.failed,
]);

type CompletionHook = (run: Run, manager: EntityManager) => unknown;

/** A row of `progress` / `list` in runs.sql.ts (bigint columns arrive as strings). */
interface RunRow {
  id: string;
  queue: string;
  state: RunState;
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

/**
 * Runs: one input split into chunks worked by many processes, as one unit of work.
 *
 * `start()` writes the run row, one `pending` checkpoint row per chunk and every chunk's pg-boss
 * job in one transaction; the chunk handler is an ordinary `@Checkpointed({ queue })` method that
 * finds its slice in `job.data.items` and its run in `ctx.run`. A run completes exactly once, in
 * the transaction of its last chunk; `@OnRunCompleted(queue)` methods then run once per run.
 * Small inputs (at most `directThreshold` items) run inline in the caller, checkpointed the same
 * way. Progress is summed from the chunks' rows in one statement; `watch()` follows it from any
 * process.
 */
@Injectable()
export class CheckpointRuns
  implements OnModuleInit, OnApplicationBootstrap, BeforeApplicationShutdown
{
  private readonly logger = new Logger('Checkpoint');
  private readonly sql: RunsSql;
  private readonly hooks = new Map<string, CompletionHook[]>();
  private readonly watchers = new Map<string, Observable<Run>>();
  /** This process in the run_worker table. */
  private readonly workerId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private beatTimer?: NodeJS.Timeout;
  private sweepTimer?: NodeJS.Timeout;
  private sweeping?: Promise<void>;
  private stopped = false;

  constructor(
    @Inject(CHECKPOINT_OPTIONS) private readonly options: ResolvedCheckpointOptions,
    @Inject(CHECKPOINT_DATA_SOURCE) private readonly dataSource: DataSource,
    @Inject(CHECKPOINT_BOSS) private readonly boss: PgBoss | null,
    private readonly repository: CheckpointRepository,
    private readonly session: CheckpointSession,
    private readonly service: CheckpointService,
    private readonly queues: CheckpointQueues,
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
  ) {
    this.sql = runsSql(options.schema);
  }

  // --- starting -------------------------------------------------------------------------------

  /**
   * Starts a run of `items` on `queue`: the run row, a checkpoint row per chunk and every chunk's
   * pg-boss job commit in one transaction, so that a crash leaves all of it or none of it. With
   * an id that exists it returns that run and sends nothing (a direct run that did not finish
   * runs on inline instead, resuming after its last committed batch).
   *
   * At most `directThreshold` items (default 50) and a worker for `queue` in this process: the run
   * is worked inline, as one chunk, and `start` resolves when it is done (`result` holds the
   * handler's return value). Bad input throws `CheckpointValidationError` naming the field, and
   * writes nothing.
   */
  async start<T, D = unknown>(queue: string, options: StartRunOptions<T, D>): Promise<StartedRun> {
    assertQueueName(queue);
    const { id, items, data } = options ?? ({} as StartRunOptions<T, D>);
    assertRunId(id);
    if (!isNonEmptyArray(items)) {
      throw new CheckpointValidationError(runMessages.emptyItems(items));
    }
    const chunkOption = options.chunkSize ?? 'auto';
    if (chunkOption !== 'auto' && !isPositiveInteger(chunkOption)) {
      throw new CheckpointValidationError(runMessages.badChunkSize(options.chunkSize));
    }
    const threshold = options.directThreshold ?? this.options.directThreshold;
    if (!Number.isSafeInteger(threshold) || threshold < 0) {
      throw new CheckpointValidationError(
        `runs.start: directThreshold must be a whole number >= 0 (got ${String(threshold)})`,
      );
    }
    const metadata = toJson('metadata', options.metadata, this.options.maxPayloadBytes);
    const boss = this.requireBoss();
    await this.assertQueueKnown(queue);

    const total = items.length;
    const direct = total <= threshold && this.queues.queues.includes(queue);
    // The chunks differ by at most one item (chunkSlices); chunkSize is the largest.
    const chunkCount = direct
      ? 1
      : chunkOption === 'auto'
        ? (await this.plan(queue, total, { targetChunkMs: options.targetChunkMs })).chunkCount
        : Math.ceil(total / Math.min(chunkOption, total));
    const slices = chunkSlices(total, chunkCount);
    const chunkSize = slices[0].size;
    const jobIds = Array.from({ length: chunkCount }, (_, i) => chunkJobId(id, i));
    const keys = jobIds.map((jobId) => `${queue}:${jobId}`);
    const totals = slices.map((slice) => slice.size);
    const chunkData = (i: number): RunChunkData<T, D> => ({
      items: items.slice(slices[i].offset, slices[i].offset + slices[i].size),
      data,
      run: { id, chunk: i, chunks: chunkCount, offset: slices[i].offset },
    });

    const created = await this.dataSource.transaction(async (manager) => {
      const inserted = await this.repository.run(
        'run-start',
        id,
        this.sql.insertRun(
          id,
          queue,
          direct ? 'direct' : 'queued',
          total,
          chunkCount,
          chunkSize,
          JSON.stringify({ chunkSize: chunkOption, directThreshold: threshold }),
          metadata,
        ),
        manager,
      );
      // The id exists: that run stands as it is, and nothing is sent twice.
      if (inserted.rows.length === 0) return false;
      await this.repository.run(
        'run-start',
        id,
        this.sql.insertChunks(id, queue, keys, jobIds, totals),
        manager,
      );
      if (!direct) {
        const jobs = jobIds.map((jobId, i) => ({ id: jobId, data: chunkData(i) }));
        try {
          await boss.insert(queue, jobs, { db: bossDb(manager) });
        } catch (error) {
          throw new CheckpointStoreError('run-start', id, error);
        }
      }
      return true;
    });
    if (created) this.session.announce(RUN_NOTIFY_PREFIX + id);

    const run = await this.require(id);
    if (
      run.mode !== 'direct' ||
      run.state === RUN_STATES.completed ||
      run.state === RUN_STATES.cancelled ||
      !this.queues.queues.includes(run.queue)
    ) {
      return { ...run, created };
    }
    // A direct run: worked here, now; started again after a failure, it resumes.
    if (run.state === RUN_STATES.failed) {
      await this.repository.run('run-start', id, this.sql.reopenRun(id));
    }
    let result: unknown;
    try {
      result = await this.queues.runInline(run.queue, {
        id: chunkJobId(id, 0),
        data: {
          items: [...items],
          data,
          run: { id, chunk: 0, chunks: 1, offset: 0 },
        } satisfies RunChunkData<T, D>,
      });
    } catch (error) {
      await this.repository.run('run-fail', id, this.sql.failRun(id));
      this.session.announce(RUN_NOTIFY_PREFIX + id);
      throw error;
    }
    return { ...(await this.require(id)), created, result };
  }

  /**
   * The chunk size `start(queue, { chunkSize: 'auto' })` would use for `totalItems` items now,
   * the numbers behind it (workers alive on the queue, per-item time measured on its earlier
   * runs) and a one-line reason.
   */
  async plan(queue: string, totalItems: number, options: PlanRunOptions = {}): Promise<RunPlan> {
    assertQueueName(queue);
    if (!isPositiveInteger(totalItems)) {
      throw new CheckpointValidationError(runMessages.badCount('totalItems', totalItems));
    }
    const targetChunkMs = options.targetChunkMs ?? DEFAULT_TARGET_CHUNK_MS;
    const minChunkSize = options.minChunkSize ?? 1;
    const maxChunkSize = options.maxChunkSize ?? DEFAULT_MAX_CHUNK_SIZE;
    for (const [field, value] of Object.entries({ targetChunkMs, minChunkSize, maxChunkSize })) {
      if (!isPositiveInteger(value)) {
        throw new CheckpointValidationError(runMessages.badCount(field, value));
      }
    }
    const [workers] = (
      await this.repository.run<{ alive: number; known: number }>(
        'run-plan',
        undefined,
        this.sql.workers(queue, WORKER_ALIVE_SECONDS),
      )
    ).rows;
    const [measured] = (
      await this.repository.run<{ item_ms: number | null; runs: number }>(
        'run-plan',
        undefined,
        this.sql.measured(queue),
      )
    ).rows;
    const itemMs = measured?.item_ms ?? null;
    return {
      queue,
      measuredRuns: measured?.runs ?? 0,
      ...planChunks({
        totalItems,
        workers: workers?.alive ?? 0,
        itemMs: itemMs === null ? null : Math.round(itemMs * 1000) / 1000,
        targetChunkMs,
        minChunkSize,
        maxChunkSize,
      }),
    };
  }

  // --- reading --------------------------------------------------------------------------------

  /** The run and its progress (one statement over at most one row per chunk), or null. */
  async get(id: string): Promise<Run | null> {
    assertRunId(id);
    const { rows } = await this.repository.run<RunRow>('run-get', id, this.sql.progress(id));
    return rows[0] === undefined ? null : toRun(rows[0]);
  }

  /**
   * A page of runs with their progress, newest first; `state: 'created'` or `'running'` matches
   * open runs. Pass the page's `after` for the next one while `more` is true.
   */
  async list(filter: ListRunsOptions = {}): Promise<CheckpointPage<Run>> {
    const limit = filter.limit ?? 100;
    if (!isPositiveInteger(limit)) {
      throw new CheckpointValidationError(runMessages.badFilter('limit', limit));
    }
    if (filter.queue !== undefined) assertQueueName(filter.queue);
    const after =
      filter.after === undefined ? null : decodeCursor('runs.list', filter.after, TIME_AND_KEY);
    const state =
      filter.state === RUN_STATES.created || filter.state === RUN_STATES.running
        ? 'open'
        : (filter.state ?? null);
    const { rows } = await this.repository.run<RunRow & { page_at: string }>(
      'run-list',
      undefined,
      this.sql.list(filter.queue ?? null, state, limit, after),
    );
    return toPage(rows, limit, (row) => [row.page_at, row.id], toRun);
  }

  /** The chunks of a run in order, with their state, progress and results. */
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
      result: row.result,
      error: row.error,
    }));
  }

  /**
   * The run's progress as it changes, from any process (LISTEN/NOTIFY on its chunks' keys, and a
   * read every two seconds in case a notification was missed): the current value first, then one
   * value per change; completes with the run's final state (completed, cancelled, or a direct
   * run's failure). Subscribers in one process share one reader.
   */
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

  // --- cancelling -----------------------------------------------------------------------------

  /**
   * Cancels a run in one transaction: every unfinished chunk gets `control = 'cancel'` in one
   * statement (a running attempt hears it at once and stops at its next batch boundary; a chunk no
   * attempt holds is cancelled outright), the run's pg-boss jobs that have not finished are
   * cancelled so that none runs again, and the run becomes `cancelled`. What was committed stays.
   * A finished run is returned unchanged.
   */
  async cancel(id: string): Promise<Run> {
    assertRunId(id);
    const boss = this.boss;
    if ((await this.get(id)) === null) throw new CheckpointRunNotFoundError(id);
    await this.dataSource.transaction(async (manager) => {
      // The jobs to cancel: every chunk's that has not finished (read before the control flips
      // the idle chunks to cancelled).
      const open = await this.repository.run<{ queue: string; job_id: string }>(
        'run-cancel',
        id,
        this.sql.openChunks(id),
        manager,
      );
      // Chunk rows before the run row: the order in which a completing chunk locks them.
      await this.service.controlRun(id, 'cancel', { manager });
      await this.repository.run('run-cancel', id, this.sql.cancelRun(id), manager);
      const byQueue = new Map<string, string[]>();
      for (const row of open.rows) {
        byQueue.set(row.queue, [...(byQueue.get(row.queue) ?? []), row.job_id]);
      }
      if (boss !== null) {
        for (const [queue, ids] of byQueue) {
          try {
            await boss.cancel(queue, ids, { db: bossDb(manager) });
          } catch (error) {
            throw new CheckpointStoreError('run-cancel', id, error);
          }
        }
      }
    });
    this.session.announce(RUN_NOTIFY_PREFIX + id);
    return this.require(id);
  }

  // --- lifecycle ------------------------------------------------------------------------------

  /** Finds `@OnRunCompleted()` methods and follows chunk completions. */
  onModuleInit(): void {
    for (const wrapper of this.discovery.getProviders()) {
      const instance: unknown = wrapper.instance;
      if (instance === null || typeof instance !== 'object' || !wrapper.isDependencyTreeStatic())
        continue;
      const prototype = Object.getPrototypeOf(instance) as object | null;
      if (prototype === null) continue;
      for (const name of this.scanner.getAllMethodNames(prototype)) {
        const method = (prototype as Record<string, unknown>)[name] as CompletionHook;
        const queue = this.reflector.get<string | undefined>(ON_RUN_COMPLETED_METADATA, method);
        if (queue === undefined) continue;
        if (typeof queue !== 'string' || queue.length === 0) {
          throw new CheckpointConfigError(
            `${instance.constructor.name}.${name}: @OnRunCompleted() needs a queue name`,
          );
        }
        this.hooks.set(queue, [
          ...(this.hooks.get(queue) ?? []),
          (run, manager) => method.call(instance, run, manager),
        ]);
      }
    }
    this.service.onChunkCompleted(({ runId }, manager) => this.chunkCompleted(runId, manager));
  }

  /** Registers this process as a worker of its queues, and starts the completion sweep. */
  async onApplicationBootstrap(): Promise<void> {
    const queues = this.queues.queues;
    if (queues.length > 0) {
      await this.beat(queues);
      this.beatTimer = setInterval(() => void this.beat(queues), WORKER_BEAT_MS).unref();
    }
    if (queues.length > 0 || this.hooks.size > 0) {
      this.sweepTimer = setInterval(() => void this.sweep(), SWEEP_INTERVAL_MS).unref();
    }
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearInterval(this.beatTimer);
    clearInterval(this.sweepTimer);
    await this.sweeping;
    if (this.queues.queues.length === 0) return;
    try {
      await this.repository.run('run-worker', undefined, this.sql.unregister(this.workerId));
    } catch (error) {
      this.logger.warn(`could not unregister this worker: ${(error as Error).message}`);
    }
  }

  // --- internals ------------------------------------------------------------------------------

  /**
   * A chunk of `runId` completed: in its transaction when it had one (else in a new one), lock
   * the run row and complete the run if no chunk is left. The lock serialises the last chunks,
   * so exactly one of them sees every other one completed.
   */
  private async chunkCompleted(runId: string, manager: EntityManager | undefined): Promise<void> {
    const finish = async (on: EntityManager): Promise<boolean> => {
      await this.repository.run('run-complete', runId, this.sql.lockRun(runId), on);
      const { rows } = await this.repository.run('run-complete', runId, this.sql.finish(runId), on);
      return rows.length > 0;
    };
    const completed =
      manager === undefined ? await this.dataSource.transaction(finish) : await finish(manager);
    this.session.announce(RUN_NOTIFY_PREFIX + runId);
    // The hook runs after the completion committed; the sweep is the safety net.
    if (completed && this.hooks.size > 0) setTimeout(() => void this.sweep(), 20).unref();
  }

  /** Completes runs whose completer died, and runs the completion hooks that are due. */
  private sweep(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.sweeping ??= this.sweepOnce()
      .catch((error: Error) => this.logger.warn(`runs sweep failed: ${error.message}`))
      .finally(() => (this.sweeping = undefined));
    return this.sweeping;
  }

  private async sweepOnce(): Promise<void> {
    const hookQueues = [...this.hooks.keys()];
    const queues = [...new Set([...this.queues.queues, ...hookQueues])];
    if (queues.length === 0) return;
    const open = await this.repository.run<{ id: string }>(
      'run-sweep',
      undefined,
      this.sql.unfinished(queues),
    );
    for (const { id } of open.rows) await this.chunkCompleted(id, undefined);
    if (hookQueues.length === 0) return;
    const due = await this.repository.run<{ id: string }>(
      'run-sweep',
      undefined,
      this.sql.hookDue(hookQueues),
    );
    for (const { id } of due.rows) {
      if (this.stopped) return;
      await this.runHook(id);
    }
  }

  /** Runs the completion hooks of a run, in the transaction that marks them as run. */
  private async runHook(id: string): Promise<void> {
    try {
      await this.dataSource.transaction(async (manager) => {
        const claimed = await this.repository.run('run-hook', id, this.sql.claimHook(id), manager);
        if (claimed.rows.length === 0) return;
        const row = (
          await this.repository.run<RunRow>('run-hook', id, this.sql.progress(id), manager)
        ).rows[0];
        if (row === undefined) return;
        const run = toRun(row);
        for (const hook of this.hooks.get(run.queue) ?? []) await hook(run, manager);
      });
    } catch (error) {
      this.logger.error(
        `the completion hook of run "${id}" failed (${(error as Error).message}); it runs again`,
      );
    }
  }

  private async beat(queues: string[]): Promise<void> {
    if (this.stopped) return;
    try {
      await this.repository.run('run-worker', undefined, this.sql.beat(this.workerId, queues));
    } catch (error) {
      this.logger.warn(`could not renew this worker's registration: ${(error as Error).message}`);
    }
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
            if (
              FINAL_STATES.has(run.state) &&
              (run.state !== RUN_STATES.failed || run.mode === 'direct')
            ) {
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

  private async require(id: string): Promise<Run> {
    const run = await this.get(id);
    if (run === null) throw new CheckpointRunNotFoundError(id);
    return run;
  }

  private requireBoss(): PgBoss {
    if (this.boss === null) throw new CheckpointConfigError(runMessages.bossMissing());
    return this.boss;
  }

  /** A queue is known when a process works it (now or ever) or pg-boss has it. */
  private async assertQueueKnown(queue: string): Promise<void> {
    if (this.queues.queues.includes(queue)) return;
    const boss = this.requireBoss();
    try {
      if ((await boss.getQueue(queue)) !== null) return;
    } catch (error) {
      throw new CheckpointStoreError('run-start', undefined, error);
    }
    const [workers] = (
      await this.repository.run<{ known: number }>(
        'run-start',
        undefined,
        this.sql.workers(queue, WORKER_ALIVE_SECONDS),
      )
    ).rows;
    if ((workers?.known ?? 0) > 0) return;
    throw new CheckpointValidationError(runMessages.unknownQueue(queue));
  }
}

/**
 * The pg-boss job id of chunk `index` of run `runId`: a uuid derived from both (sha-1, in the
 * shape of a version-5 uuid), so that a start that is retried can never send a chunk twice.
 */
export function chunkJobId(runId: string, index: number): string {
  const hex = createHash('sha1').update(`nestjs-checkpoint:run:${runId}:${index}`).digest('hex');
  const variant = ((parseInt(hex.slice(16, 18), 16) & 0x3f) | 0x80).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${variant}${hex.slice(18, 20)}-${hex.slice(20, 32)}`;
}

function toRun(row: RunRow): Run {
  const total = Number(row.total_items);
  const done = Number(row.items_done);
  const settled = row.chunks_done + row.chunks_failed + row.chunks_cancelled;
  let state = row.state;
  if (state === RUN_STATES.created && row.chunks_started > 0) state = RUN_STATES.running;
  // Every chunk settled and some failed: nothing will complete it unless a job is retried.
  if (
    (state === RUN_STATES.created || state === RUN_STATES.running) &&
    row.chunks_failed > 0 &&
    settled === row.chunk_count
  ) {
    state = RUN_STATES.failed;
  }
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

/** Not a type guard on purpose: the items keep their declared element type. */
function isNonEmptyArray(value: unknown): boolean {
  return Array.isArray(value) && value.length > 0;
}

function isPositiveInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;
}

function assertRunId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_RUN_ID_LENGTH) {
    throw new CheckpointValidationError(runMessages.badId(id));
  }
}

function assertQueueName(queue: unknown): asserts queue is string {
  if (typeof queue !== 'string' || queue.length === 0) {
    throw new CheckpointValidationError(runMessages.badQueue(queue));
  }
}
