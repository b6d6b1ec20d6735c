import { CheckpointError } from '../checkpoint.errors.js';

/** A batch boundary: before the batch's commit (its transaction still open) or after it. */
export type InterruptionPhase = 'before-commit' | 'after-commit';

/** The batch at whose boundary an attempt may be interrupted. */
export interface BoundaryBatch {
  key: string;
  /** The batch's index over the whole work. */
  index: number;
  /** Position of its first item in the whole input. */
  startIndex: number;
  items: number;
}

/**
 * The seam `nestjs-checkpoint/testing` uses to interrupt attempts in one process: it may give an
 * attempt another batch size, and make it stop dead at a batch boundary (see
 * CheckpointInterruptedError). Production has none; the batch loop checks for it once per batch.
 * @internal
 */
export interface AttemptInterrupter {
  /** The batch size an attempt on `key` uses instead of its method's, or undefined. */
  batchSize(key: string): number | undefined;
  /** Whether the attempt stops dead at this boundary. */
  interrupts(batch: BoundaryBatch, phase: InterruptionPhase): boolean;
}

/**
 * An attempt was interrupted at a batch boundary the way a killed process stops: its open
 * transaction rolled back, nothing completed, failed or released. The runner resumes the key as
 * a new attempt (a new claim, a new epoch) within the same call.
 */
export class CheckpointInterruptedError extends CheckpointError {
  constructor(
    readonly boundary: BoundaryBatch,
    readonly phase: InterruptionPhase,
  ) {
    const { key, startIndex, items } = boundary;
    super(
      `"${key}" interrupted ${phase === 'before-commit' ? 'before' : 'after'} the commit of items ` +
        `${startIndex}-${startIndex + items - 1}`,
    );
  }
}
