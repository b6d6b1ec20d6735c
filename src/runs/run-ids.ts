// Run ids, chunk job ids, and the checks of the values every runs call takes.
import { createHash } from 'node:crypto';
import { CheckpointValidationError } from '../checkpoint.errors.js';
import { MAX_RUN_ID_LENGTH } from './runs.constants.js';
import { runMessages } from './runs.messages.js';

/**
 * The pg-boss job id of chunk `index` of run `runId`: a uuid derived from both (sha-1, in the
 * shape of a version-5 uuid), so that a start that is retried can never send a chunk twice.
 */
export function chunkJobId(runId: string, index: number): string {
  const hex = createHash('sha1').update(`nestjs-checkpoint:run:${runId}:${index}`).digest('hex');
  const variant = ((parseInt(hex.slice(16, 18), 16) & 0x3f) | 0x80).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${variant}${hex.slice(18, 20)}-${hex.slice(20, 32)}`;
}

/** Not a type guard on purpose: the items keep their declared element type. */
export function isNonEmptyArray(value: unknown): boolean {
  return Array.isArray(value) && value.length > 0;
}

export function isPositiveInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;
}

export function assertRunId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_RUN_ID_LENGTH) {
    throw new CheckpointValidationError(runMessages.badId(id));
  }
}

export function assertQueueName(queue: unknown): asserts queue is string {
  if (typeof queue !== 'string' || queue.length === 0) {
    throw new CheckpointValidationError(runMessages.badQueue(queue));
  }
}
