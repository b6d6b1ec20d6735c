import { SetMetadata } from '@nestjs/common';
import { CHECKPOINTED_METADATA } from '../checkpoint.constants.js';
import type { CheckpointedOptions } from '../checkpointed.interface.js';

/**
 * With `queue`, the worker calls the method with one pg-boss job (pg-boss 12's `work()` hands out
 * arrays; the module's worker takes them one at a time): a first parameter typed as a job array,
 * or as no job at all, is a compile error whose text says so.
 */
type FirstParameterIsOneJob<M extends (...args: never[]) => unknown> =
  Parameters<M>[0] extends readonly unknown[]
    ? { 'with `queue`, the first parameter must be one pg-boss Job, not an array': never }
    : Parameters<M>[0] extends { id: string; data: unknown }
      ? unknown
      : { 'with `queue`, the first parameter must be the pg-boss Job': never };

/**
 * The decorator `@Checkpointed({ queue })` returns: it checks the method's first parameter.
 *
 * @typeParam M - the decorated method's type, whose first parameter must be one pg-boss Job
 */
export type CheckpointedQueueDecorator = <M extends (...args: never[]) => unknown>(
  target: object,
  propertyKey: string | symbol,
  descriptor: TypedPropertyDescriptor<M> & FirstParameterIsOneJob<M>,
) => void;

/**
 * Makes a provider method resumable: each call claims a checkpoint key, resumes after the last
 * committed batch, and marks the key completed (keeping the return value) or failed.
 *
 * With `queue` the method is also registered as the pg-boss worker of that queue at bootstrap,
 * and its first argument is the job. Only writes metadata; `CheckpointExplorer` does the rest.
 *
 * @example
 * ```ts
 * @Checkpointed({ queue: 'screening', batchSize: 50, transactional: true })
 * async screen(job: Job<{ ids: string[] }>, @CheckpointCtx() ctx: CheckpointContext = CHECKPOINT_CONTEXT) {
 *   for await (const batch of ctx.batches(job.data.ids)) {
 *     await batch.manager.insert(Decision, await this.classify(batch.items));
 *   }
 * }
 * ```
 */
export function Checkpointed(
  options: CheckpointedOptions & { queue: string },
): CheckpointedQueueDecorator;
export function Checkpointed(options?: CheckpointedOptions): MethodDecorator;
export function Checkpointed(options: CheckpointedOptions = {}): MethodDecorator {
  return SetMetadata(CHECKPOINTED_METADATA, options);
}
