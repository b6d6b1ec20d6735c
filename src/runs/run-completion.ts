// Completing runs: a run completes in the transaction of its last chunk; a sweep completes runs
// whose completer died and runs the completion hooks that are due; each worker process keeps its
// row in run_worker (the planner counts them).
import { Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { DataSource, EntityManager } from 'typeorm';
import { CheckpointQueues } from '../boss/checkpoint-queues.js';
import { RUN_NOTIFY_PREFIX } from '../checkpoint.constants.js';
import { CheckpointRepository } from '../checkpoint.repository.js';
import { CheckpointSession } from '../checkpoint.session.js';
import type { RunReads } from './run-reads.js';
import { SWEEP_INTERVAL_MS, WORKER_BEAT_MS } from './runs.constants.js';
import type { Run } from './runs.interfaces.js';
import type { RunsSql } from './runs.sql.js';

export type CompletionHook = (run: Run, manager: EntityManager) => unknown;

/** The completion of runs and the worker registration (CheckpointRuns hands over to it). @internal */
export class RunCompletion {
  private readonly logger = new Logger('Checkpoint');
  private readonly hooks = new Map<string, CompletionHook[]>();
  /** This process in the run_worker table. */
  private readonly workerId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private beatTimer?: NodeJS.Timeout;
  private sweepTimer?: NodeJS.Timeout;
  private sweeping?: Promise<void>;
  private stopped = false;

  constructor(
    private readonly sql: RunsSql,
    private readonly dataSource: DataSource,
    private readonly repository: CheckpointRepository,
    private readonly session: CheckpointSession,
    private readonly queues: CheckpointQueues,
    private readonly reads: RunReads,
  ) {}

  /** An `@OnRunCompleted(queue)` method. */
  addHook(queue: string, hook: CompletionHook): void {
    this.hooks.set(queue, [...(this.hooks.get(queue) ?? []), hook]);
  }

  /** Registers this process as a worker of its queues, and starts the completion sweep. */
  async start(): Promise<void> {
    const queues = this.queues.queues;
    if (queues.length > 0) {
      await this.beat(queues);
      this.beatTimer = setInterval(() => void this.beat(queues), WORKER_BEAT_MS).unref();
    }
    if (queues.length > 0 || this.hooks.size > 0) {
      this.sweepTimer = setInterval(() => void this.sweep(), SWEEP_INTERVAL_MS).unref();
    }
  }

  async stop(): Promise<void> {
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

  /**
   * A chunk of `runId` completed: in its transaction when it had one (else in a new one), lock
   * the run row and complete the run if no chunk is left. The lock serialises the last chunks,
   * so exactly one of them sees every other one completed.
   */
  async chunkCompleted(runId: string, manager: EntityManager | undefined): Promise<void> {
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
        const run = await this.reads.read(id, manager);
        if (run === null) return;
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
}
