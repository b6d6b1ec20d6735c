/** A batch size that adapts so that one batch takes about `targetMs`. */
export interface AdaptiveBatchSize {
  targetMs: number;
  /** Smallest batch (default 1). */
  min?: number;
  /** Largest batch (default 10 000). */
  max?: number;
}

export const DEFAULT_BATCH_SIZE = 100;

/**
 * Chooses the size of each batch: a fixed number, or a size that adapts so that one batch
 * takes about `targetMs`. The adaptive size follows a moving average of the time per item and
 * grows at most fourfold per batch, so one fast outlier cannot make the next batch huge.
 */
export class BatchSizer {
  private current: number;
  private msPerItem: number | undefined;
  private readonly adaptive: Required<AdaptiveBatchSize> | undefined;

  constructor(option: number | AdaptiveBatchSize | undefined) {
    if (typeof option === 'object') {
      this.adaptive = {
        targetMs: option.targetMs,
        min: option.min ?? 1,
        max: option.max ?? 10_000,
      };
      this.current = clamp(10, this.adaptive.min, this.adaptive.max);
    } else {
      this.current = option ?? DEFAULT_BATCH_SIZE;
    }
  }

  get size(): number {
    return this.current;
  }

  /** Records how long a batch of `items` took, and picks the next size. */
  record(items: number, elapsedMs: number): void {
    if (this.adaptive === undefined || items === 0) return;
    const sample = Math.max(elapsedMs, 0.001) / items;
    this.msPerItem = this.msPerItem === undefined ? sample : 0.5 * this.msPerItem + 0.5 * sample;
    const ideal = Math.round(this.adaptive.targetMs / this.msPerItem);
    this.current = clamp(Math.min(ideal, this.current * 4), this.adaptive.min, this.adaptive.max);
  }
}

/** Problems with a batchSize option, for the bootstrap error (empty when it is fine). */
export function batchSizeProblems(option: unknown): string[] {
  if (option === undefined) return [];
  if (typeof option === 'number') {
    return Number.isSafeInteger(option) && option >= 1
      ? []
      : [`batchSize must be a whole number >= 1 (got ${option})`];
  }
  if (typeof option !== 'object' || option === null)
    return ['batchSize must be a number or { targetMs, min?, max? }'];
  const { targetMs, min = 1, max = 10_000 } = option as Partial<AdaptiveBatchSize>;
  const problems: string[] = [];
  if (typeof targetMs !== 'number' || !(targetMs > 0))
    problems.push(`batchSize.targetMs must be > 0 (got ${String(targetMs)})`);
  if (!Number.isSafeInteger(min) || min < 1)
    problems.push(`batchSize.min must be a whole number >= 1 (got ${String(min)})`);
  if (!Number.isSafeInteger(max) || max < min)
    problems.push(`batchSize.max must be a whole number >= min (got ${String(max)})`);
  return problems;
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}
