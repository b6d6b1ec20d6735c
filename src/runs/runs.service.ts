import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  OnApplicationBootstrap,
  OnModuleInit,
} from '@nestjs/common';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { PgBoss } from 'pg-boss';
import type { Observable } from 'rxjs';
import type { DataSource } from 'typeorm';
import { CheckpointQueues } from '../boss/checkpoint-queues.js';
import {
  CHECKPOINT_BOSS,
  CHECKPOINT_DATA_SOURCE,
  CHECKPOINT_OPTIONS,
} from '../checkpoint.constants.js';
import { CheckpointConfigError } from '../checkpoint.errors.js';
import type { ResolvedCheckpointOptions } from '../checkpoint.options.js';
import { CheckpointRepository } from '../checkpoint.repository.js';
import { CheckpointService } from '../checkpoint.service.js';
import { CheckpointSession } from '../checkpoint.session.js';
import type { CheckpointPage } from '../page-cursor.js';
import type { ControlAction } from '../checkpoint.interfaces.js';
import { assertRunId } from './run-ids.js';
import { RunCancel } from './run-cancel.js';
import { RunCompletion, type CompletionHook } from './run-completion.js';
import { RunReads } from './run-reads.js';
import { RunStarts } from './run-start.js';
import { ON_RUN_COMPLETED_METADATA } from './runs.constants.js';
import type {
  ListRunsOptions,
  PlanRunOptions,
  Run,
  RunChunk,
  RunPlan,
  StartedRun,
  StartRunOptions,
} from './runs.interfaces.js';
import { runsSql } from './runs.sql.js';

export { chunkJobId } from './run-ids.js';

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
 *
 * The service is a façade: starting (run-start.ts), reading and watching (run-reads.ts),
 * completion (run-completion.ts) and cancel (run-cancel.ts) each live in a file of their own.
 */
@Injectable()
export class CheckpointRuns
  implements OnModuleInit, OnApplicationBootstrap, BeforeApplicationShutdown
{
  private readonly reads: RunReads;
  private readonly starts: RunStarts;
  private readonly completion: RunCompletion;
  private readonly cancels: RunCancel;

  constructor(
    @Inject(CHECKPOINT_OPTIONS) options: ResolvedCheckpointOptions,
    @Inject(CHECKPOINT_DATA_SOURCE) dataSource: DataSource,
    @Inject(CHECKPOINT_BOSS) boss: PgBoss | null,
    repository: CheckpointRepository,
    session: CheckpointSession,
    private readonly service: CheckpointService,
    queues: CheckpointQueues,
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
  ) {
    const sql = runsSql(options.schema);
    this.reads = new RunReads(sql, repository, session, boss);
    this.starts = new RunStarts(
      options,
      sql,
      dataSource,
      boss,
      repository,
      session,
      queues,
      this.reads,
    );
    this.completion = new RunCompletion(sql, dataSource, repository, session, queues, this.reads);
    this.cancels = new RunCancel(sql, dataSource, boss, repository, session, service, this.reads);
  }

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
  start<T, D = unknown>(queue: string, options: StartRunOptions<T, D>): Promise<StartedRun> {
    return this.starts.start(queue, options);
  }

  /**
   * The chunk size `start(queue, { chunkSize: 'auto' })` would use for `totalItems` items now,
   * the numbers behind it (workers alive on the queue, per-item time measured on its earlier
   * runs) and a one-line reason.
   */
  plan(queue: string, totalItems: number, options: PlanRunOptions = {}): Promise<RunPlan> {
    return this.starts.plan(queue, totalItems, options);
  }

  /** The run and its progress (one statement over at most one row per chunk), or null. */
  get(id: string): Promise<Run | null> {
    return this.reads.get(id);
  }

  /**
   * A page of runs with their progress, newest first, of one state if `state` is given (the
   * state `get()` reads). Pass the page's `after` for the next one while `more` is true.
   */
  list(filter: ListRunsOptions = {}): Promise<CheckpointPage<Run>> {
    return this.reads.list(filter);
  }

  /** The chunks of a run in order, with their state, progress and results. */
  chunks(id: string): Promise<RunChunk[]> {
    return this.reads.chunks(id);
  }

  /**
   * The run's progress as it changes, from any process (LISTEN/NOTIFY on its chunks' keys, and a
   * read every two seconds in case a notification was missed): the current value first, then one
   * value per change; completes with the run's final state (completed, cancelled or failed: a
   * run is failed once no chunk of it will run again). Subscribers in one process share one
   * reader.
   */
  watch(id: string): Observable<Run> {
    return this.reads.watch(id);
  }

  /**
   * Cancels a run in one transaction: every unfinished chunk gets `control = 'cancel'` in one
   * statement (a running attempt hears it at once and stops at its next batch boundary; a chunk no
   * attempt holds is cancelled outright), the run's pg-boss jobs that have not finished are
   * cancelled so that none runs again, and the run becomes `cancelled`. What was committed stays.
   * A finished run is returned unchanged.
   */
  cancel(id: string): Promise<Run> {
    return this.cancels.cancel(id);
  }

  /**
   * Pauses, resumes or cancels a run, as `action` names it: the one way the HTTP module and the
   * command line act on a run. Every chunk of the run that can take the request takes it; a cancel
   * is `cancel()` (its pg-boss jobs too) for a run this service started, and reaches the keys
   * tagged with the id otherwise. Returns how many chunks took it (0: none could).
   */
  async control(id: string, action: ControlAction): Promise<number> {
    assertRunId(id);
    if (action === 'cancel' && (await this.reads.get(id)) !== null) {
      return this.cancels.cancelChunks(id);
    }
    return this.service.controlRun(id, action);
  }

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
        this.completion.addHook(queue, (run, manager) => method.call(instance, run, manager));
      }
    }
    this.service.onChunkCompleted(({ runId }, manager) =>
      this.completion.chunkCompleted(runId, manager),
    );
  }

  /** Registers this process as a worker of its queues, and starts the completion sweep. */
  onApplicationBootstrap(): Promise<void> {
    return this.completion.start();
  }

  beforeApplicationShutdown(): Promise<void> {
    return this.completion.stop();
  }
}
