import type { EntityManager } from 'typeorm';
import type { CheckpointedOptions } from '../checkpointed.interface.js';

/** A decorated method, ready to run: built once at bootstrap by the explorer. */
export interface CheckpointedMethod {
  /** `ClassName.method`, for messages. */
  where: string;
  options: CheckpointedOptions;
  original: (...args: unknown[]) => unknown;
  contextIndex: number | undefined;
  key: (args: unknown[]) => string;
}

/** What the pg-boss integration adds to one attempt. */
export interface AttemptHooks {
  /** pg-boss's retry count of the job: a newer dispatch supersedes an older live one. */
  dispatch?: number;
  /** pg-boss's signal for the job (aborted when pg-boss gives the attempt up). */
  signal?: AbortSignal;
  queue?: string;
  jobId?: string;
  /** In transactional mode: completes the job in the transaction that completes the key. */
  completeJob?: (manager: EntityManager, result: unknown) => Promise<void>;
}
