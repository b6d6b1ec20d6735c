import { SetMetadata } from '@nestjs/common';
import { ON_RUN_COMPLETED_METADATA } from './runs.constants.js';

/**
 * Runs the decorated provider method once per completed run of `queue`, with the run and an
 * `EntityManager` of the transaction that records the hook as done: what the method writes
 * through it commits exactly once, even when a process dies between the run's completion and
 * the hook (another process runs it then). A hook that throws is retried about every second.
 *
 * @example
 * ```ts
 * @OnRunCompleted('screening')
 * async screened(run: Run, manager: EntityManager) {
 *   await manager.insert(Report, { runId: run.id, items: run.totalItems });
 * }
 * ```
 */
export function OnRunCompleted(queue: string): MethodDecorator {
  return SetMetadata(ON_RUN_COMPLETED_METADATA, queue);
}
