import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnModuleDestroy,
  OnModuleInit,
} from '@nestjs/common';
import type { Job, JobWithMetadata, PgBoss } from 'pg-boss';
import type { DataSource, EntityManager } from 'typeorm';
import { CHECKPOINT_DATA_SOURCE, CHECKPOINT_OPTIONS } from '../checkpoint.constants.js';
import {
  CheckpointAbortedError,
  CheckpointCancelledError,
  CheckpointConfigError,
  CheckpointPausedError,
} from '../checkpoint.errors.js';
import { messages } from '../checkpoint.messages.js';
import type { ResolvedCheckpointOptions } from '../checkpoint.options.js';
import type { AttemptHooks, CheckpointedMethod } from '../attempt/attempt.interfaces.js';
import { CheckpointRunner } from '../attempt/checkpoint.runner.js';
import { bossDb } from '../boss-db.js';
import { CheckpointRepository } from '../checkpoint.repository.js';
import { CheckpointService } from '../checkpoint.service.js';
import { CHECKPOINT_BOSS_HANDLE, guardStop, type BossHandle } from './checkpoint-boss.js';
import { handBackJob } from './checkpoint-hand-back.js';
import { CheckpointReaper } from './checkpoint-reaper.js';
import { JobControl } from './job-control.js';
import { defined, ensureQueue } from './queue-setup.js';

interface QueueRegistration {
  queue: string;
  method: CheckpointedMethod;
  instance: object;
}

/**
 * pg-boss integration and the shutdown sequence. Registers every `@Checkpointed({ queue })`
 * method as the worker of its queue at bootstrap; runs hand-written handlers' jobs under a
 * checkpoint (`CheckpointJobs`); hands the jobs of dead workers back at once; and on shutdown
 * stops fetching, lets in-flight attempts stop at a batch boundary and hands their jobs back
 * without spending a retry, before anyone's `stop()` reaches pg-boss.
 */
@Injectable()
export class CheckpointQueues
  implements OnModuleInit, OnApplicationBootstrap, OnModuleDestroy, BeforeApplicationShutdown
{
  private readonly logger = new Logger('Checkpoint');
  private readonly registrations = new Map<string, QueueRegistration>();
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Queues whose jobs hand-written handlers ran: their fetching stops at shutdown too. */
  private readonly borrowedQueues = new Set<string>();
  private readonly boss: PgBoss | null;
  /** Moves the jobs of paused, resumed and cancelled keys (none without pg-boss). */
  private readonly jobControl: JobControl | null;
  private reaper?: CheckpointReaper;
  private stopControl?: () => void;
  private draining?: Promise<void>;
  private unguard?: () => void;

  constructor(
    @Inject(CHECKPOINT_BOSS_HANDLE) private readonly handle: BossHandle,
    @Inject(CHECKPOINT_OPTIONS) private readonly options: ResolvedCheckpointOptions,
    @Inject(CHECKPOINT_DATA_SOURCE) private readonly dataSource: DataSource,
    private readonly service: CheckpointService,
    private readonly runner: CheckpointRunner,
    private readonly repository: CheckpointRepository,
  ) {
    this.boss = handle.boss;
    this.jobControl =
      handle.boss === null
        ? null
        : new JobControl(
            handle.boss,
            dataSource,
            service,
            this.logger,
            (queue) => this.registrations.has(queue) || this.borrowedQueues.has(queue),
            (key, manager) => this.countHandBack(key, manager),
          );
  }

  /** Called by the explorer for each `@Checkpointed({ queue })` method. */
  register(queue: string, method: CheckpointedMethod, instance: object): void {
    const existing = this.registrations.get(queue);
    if (existing !== undefined) {
      throw new CheckpointConfigError(
        messages.badDecoratorOptions(method.where, [
          `queue "${queue}" already has a worker: ${existing.method.where}`,
        ]),
      );
    }
    if (this.boss === null)
      throw new CheckpointConfigError(messages.bossMissing(method.where, queue));
    this.registrations.set(queue, { queue, method, instance });
  }

  /** Guards the instance: whoever stops pg-boss first runs the shutdown sequence. */
  onModuleInit(): void {
    if (this.boss !== null) this.unguard = guardStop(this.boss, () => this.drain());
  }

  async onApplicationBootstrap(): Promise<void> {
    const boss = this.boss;
    if (boss === null) return;
    // Every process with pg-boss reaps, for any queue: hand-written handlers record theirs too.
    this.reaper = new CheckpointReaper(boss, this.service);
    this.reaper.start();
    for (const { queue, method } of this.registrations.values()) {
      const { options } = method;
      await ensureQueue(
        boss,
        queue,
        defined({
          retryLimit: options.retryLimit,
          retryDelay: options.retryDelay,
          retryBackoff: options.retryBackoff,
          retryDelayMax: options.retryDelayMax,
          expireInSeconds: options.expireInSeconds,
          retentionSeconds: options.retentionSeconds,
          deleteAfterSeconds: options.deleteAfterSeconds,
          heartbeatSeconds: options.heartbeatSeconds,
        }),
        this.logger,
      );
      const worker = await boss.work(
        queue,
        {
          ...defined({
            localConcurrency: options.localConcurrency,
            pollingIntervalSeconds: options.pollingIntervalSeconds,
            heartbeatRefreshSeconds: options.heartbeatRefreshSeconds,
          }),
          batchSize: 1,
          includeMetadata: true,
        },
        async ([job]: JobWithMetadata<object>[]) =>
          job === undefined ? undefined : this.runFetched(job),
      );
      this.reaper.wakes(queue, worker);
      this.logger.log(`${method.where} works queue "${queue}"`);
    }
    if (this.registrations.size === 0) return;
    this.stopControl = await this.service.onControl((action, key) => {
      void this.jobControl?.followControl(action, key);
    });
  }

  /** The queues this process works (its `@Checkpointed({ queue })` methods). */
  get queues(): string[] {
    return [...this.registrations.keys()];
  }

  /**
   * Runs one fetched job of a queue this process works, as the queue's worker does.
   * @internal the worker and nestjs-checkpoint/testing's drain()
   */
  runFetched(job: JobWithMetadata<object>): Promise<unknown> {
    const { method, instance } = this.registration(job.name);
    return this.runJob(method, instance, [job], job, true);
  }

  private registration(queue: string): QueueRegistration {
    const registration = this.registrations.get(queue);
    if (registration !== undefined) return registration;
    throw new CheckpointConfigError(
      `no @Checkpointed({ queue: '${queue}' }) method is registered in this process`,
    );
  }

  /**
   * Runs one job of `queue` inline in the caller, through the same checkpointed path as a
   * pg-boss job (key `<queue>:<id>`, so a second call with the same id resumes). Only for a
   * queue this process works (see `queues`).
   * @internal used by CheckpointRuns for runs at or under `directThreshold` items
   */
  async runInline(queue: string, job: { id: string; data: object }): Promise<unknown> {
    const registration = this.registration(queue);
    const inline = {
      id: job.id,
      name: queue,
      data: job.data,
      retryCount: 0,
      signal: new AbortController().signal,
    };
    return this.runner.run(registration.method, registration.instance, [inline], {
      queue,
      jobId: job.id,
    });
  }

  /**
   * The shutdown sequence, run once, before any module's destroy hook can stop pg-boss: in this
   * module's `onModuleDestroy`, or earlier, when the application or its wrapper calls
   * `boss.stop()` (the instance is guarded, see `guardStop`). Stops fetching, stops every attempt
   * at its next batch boundary and waits for them (at most `shutdownTimeoutMs`), and lets the
   * handlers hand their jobs back without spending a retry, while pg-boss and the DataSource
   * still work.
   */
  drain(): Promise<void> {
    this.draining ??= this.stopWork();
    return this.draining;
  }

  async onModuleDestroy(): Promise<void> {
    await this.drain();
  }

  /**
   * Returns the lease session to the pool and stops pg-boss when the module owns it, before
   * TypeORM closes the DataSource. An instance the application owns is the application's to stop.
   */
  async beforeApplicationShutdown(): Promise<void> {
    await this.drain();
    await this.service.close();
    this.unguard?.();
    if (this.boss !== null && this.handle.owned) {
      await this.boss.stop({
        graceful: true,
        timeout: Math.max(1000, this.options.shutdownTimeoutMs),
        close: true,
      });
    }
  }

  private async stopWork(): Promise<void> {
    this.reaper?.stop();
    this.stopControl?.();
    const boss = this.boss;
    if (boss !== null) {
      const queues = new Set([...this.registrations.keys(), ...this.borrowedQueues]);
      await Promise.all(
        [...queues].map((queue) =>
          boss
            .offWork(queue, { wait: false })
            .catch((error: Error) =>
              this.logger.warn(`could not stop fetching "${queue}": ${error.message}`),
            ),
        ),
      );
    }
    this.service.stopAttempts();
    // One deadline for both: attempts stop at a batch boundary, then handlers hand jobs back.
    await this.settleWithin(
      [...this.runner.running, ...this.inFlight],
      this.options.shutdownTimeoutMs,
    );
  }

  private async settleWithin(work: Promise<unknown>[], timeoutMs: number): Promise<void> {
    if (work.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), timeoutMs);
    });
    const settled = Promise.allSettled(work).then(() => false);
    if (await Promise.race([settled, timedOut])) {
      this.logger.warn(`in-flight work did not stop at a batch boundary within ${timeoutMs} ms`);
    }
    clearTimeout(timer);
  }

  /**
   * Runs one attempt of `method` for a pg-boss job, whoever fetched it (the module's worker, a
   * wrapper's, a hand-written one): the checkpoint row records the queue and job id (so the
   * reaper and the hand-back cover it), the job's retry count is the dispatch, and in
   * transactional mode the job completes in the transaction that completes the key (when
   * `completeJob`). Stopped by shutdown, the job is handed back without spending a retry and
   * the call resolves with undefined: the caller's worker must not fail it again.
   * @internal used by the workers, CheckpointJobs and the explorer
   */
  async runJob(
    method: CheckpointedMethod,
    instance: object,
    args: unknown[],
    job: Job<unknown> & { retryLimit?: number },
    completeJob: boolean,
  ): Promise<unknown> {
    const queue = job.name;
    const boss = this.boss;
    if (boss !== null && !this.registrations.has(queue)) this.borrowedQueues.add(queue);
    if (boss !== null && this.service.shutdownSignal.aborted) {
      // Fetched while shutting down (by a worker that is not ours): give it straight back. No
      // attempt named its key: the default one is counted (a `key` option's is not).
      await this.handBack(queue, job, `${queue}:${job.id}`);
      return undefined;
    }
    const attempt = { id: job.id, retryCount: job.retryCount };
    const hooks: AttemptHooks = {
      dispatch: job.retryCount,
      signal: job.signal,
      queue,
      jobId: job.id,
    };
    if (boss !== null && completeJob) {
      // The job completes in the same transaction as the checkpoint.
      hooks.completeJob = async (manager, result) => {
        await boss.complete(queue, attempt, toOutput(result), { db: bossDb(manager) });
      };
    }
    const run = this.runner.run(method, instance, args, hooks);
    this.inFlight.add(run);
    try {
      return await run;
    } catch (error) {
      if (
        this.jobControl !== null &&
        (error instanceof CheckpointPausedError || error instanceof CheckpointCancelledError)
      ) {
        await this.jobControl.park(queue, job, error);
        return undefined;
      }
      if (
        boss !== null &&
        this.service.shutdownSignal.aborted &&
        error instanceof CheckpointAbortedError
      ) {
        await this.handBack(queue, job, error.key);
        return undefined;
      }
      throw error;
    } finally {
      this.inFlight.delete(run);
    }
  }

  /**
   * Hands a job stopped by shutdown back without spending a retry (see `handBackJob`). A job
   * fetched by another worker than the module's (a wrapper's, a hand-written one) may come
   * without its metadata: its retry limit is read first.
   */
  private async handBack(
    queue: string,
    job: Job<unknown> & { retryLimit?: number },
    key: string,
  ): Promise<void> {
    const boss = this.boss as PgBoss;
    const retryLimit =
      job.retryLimit ?? (await boss.findJobs(queue, { id: job.id }))[0]?.retryLimit ?? 0;
    await handBackJob(
      boss,
      this.dataSource,
      queue,
      { id: job.id, retryCount: job.retryCount, retryLimit },
      'shutdown',
      (manager) => this.countHandBack(key, manager),
    );
  }

  /** Counts a pickup that spends no retry on the key, in the hand-back's transaction. */
  private countHandBack(key: string, manager: EntityManager): Promise<unknown> {
    return this.repository.run('hand-back', key, this.repository.sql.countHandBack(key), manager);
  }
}

/** pg-boss stores objects as a job's output; other values are wrapped. */
export function toOutput(result: unknown): object | null {
  if (result === undefined) return null;
  return typeof result === 'object' && result !== null ? result : { value: result };
}
