import type {
  AttemptInterrupter,
  BoundaryBatch,
  InterruptionPhase,
} from '../attempt/attempt-interrupter.js';

/**
 * Where to interrupt: at the first batch boundary that reaches item `atItem` (the batch holding
 * it), before that batch's commit (its transaction rolled back) or after it.
 */
export interface Interruption {
  atItem: number;
  phase: InterruptionPhase;
}

/** An interruption that happened: which key, which batch, and the attempt it ended. */
export interface FiredInterruption extends Interruption {
  /** 1 for the first interruption of the call. */
  number: number;
  key: string;
  /** The interrupted batch: items `startIndex` to `startIndex + items - 1`. */
  startIndex: number;
  items: number;
  /** The batch size of the attempt it ended (the method's own for the first attempt). */
  batchSize: number | undefined;
}

/**
 * Interrupts the attempts of one call at the planned boundaries, one after the other, and gives
 * each resumed attempt its planned batch size.
 */
export class InterruptionPlan implements AttemptInterrupter {
  readonly fired: FiredInterruption[] = [];

  constructor(
    private readonly points: readonly Interruption[],
    /** Batch size of the attempt after interruption n at index n - 1 (none: the method's). */
    private readonly batchSizes: readonly number[] = [],
  ) {}

  batchSize(): number | undefined {
    return this.fired.length === 0 ? undefined : this.batchSizes[this.fired.length - 1];
  }

  interrupts(batch: BoundaryBatch, phase: InterruptionPhase): boolean {
    const next = this.points[this.fired.length];
    if (next === undefined || next.phase !== phase) return false;
    if (batch.startIndex + batch.items <= next.atItem) return false;
    this.fired.push({
      ...next,
      number: this.fired.length + 1,
      key: batch.key,
      startIndex: batch.startIndex,
      items: batch.items,
      batchSize: this.batchSize(),
    });
    return true;
  }

  /** Whether every planned interruption happened. */
  get done(): boolean {
    return this.fired.length === this.points.length;
  }
}

/**
 * `count` interruptions at random boundaries of a call that works `items` items in batches of
 * `batchSize`, sorted, with a random batch size (half to twice the method's) for each resumed
 * attempt. The same seed gives the same plan.
 */
export function randomPlan(
  count: number,
  items: number,
  batchSize: number,
  seed: number,
): { points: Interruption[]; batchSizes: number[] } {
  const random = mulberry32(seed);
  const points = Array.from({ length: count }, (): Interruption => ({
    atItem: Math.floor(random() * items),
    phase: random() < 0.5 ? 'before-commit' : 'after-commit',
  })).sort(
    (a, b) =>
      a.atItem - b.atItem || (a.phase === b.phase ? 0 : a.phase === 'before-commit' ? -1 : 1),
  );
  const low = Math.max(1, Math.floor(batchSize / 2));
  const batchSizes = points.map(() => low + Math.floor(random() * (2 * batchSize - low + 1)));
  return { points, batchSizes };
}

/** A small seeded generator (mulberry32): reproducible plans without a dependency. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** "before the commit of items 100-149 of "key" (attempt batch size 37)". */
export function describeInterruption(fired: FiredInterruption): string {
  const where = fired.phase === 'before-commit' ? 'before' : 'after';
  const size = fired.batchSize === undefined ? '' : `, batch size ${fired.batchSize}`;
  return (
    `interruption ${fired.number}: "${fired.key}" ${where} the commit of items ` +
    `${fired.startIndex}-${fired.startIndex + fired.items - 1}${size}`
  );
}
