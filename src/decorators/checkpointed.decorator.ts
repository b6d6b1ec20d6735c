import { SetMetadata } from '@nestjs/common';
import { CHECKPOINTED_METADATA } from '../checkpoint.constants.js';
import type { CheckpointedOptions } from '../checkpointed.interface.js';

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
 * async screen(job: Job<{ ids: string[] }>, @CheckpointCtx() ctx: CheckpointContext) {
 *   for await (const batch of ctx.batches(job.data.ids)) {
 *     await batch.manager.insert(Decision, await this.classify(batch.items));
 *   }
 * }
 * ```
 */
export function Checkpointed(options: CheckpointedOptions = {}): MethodDecorator {
  return SetMetadata(CHECKPOINTED_METADATA, options);
}
