/** What the chunk-size rule needs to know about a queue. */
export interface PlanInput {
  totalItems: number;
  /** Worker processes alive on the queue (0 when none is: planned as if one were). */
  workers: number;
  /** Milliseconds one item took on the queue's earlier runs, or null when never measured. */
  itemMs: number | null;
  /** How long one chunk should take. */
  targetChunkMs: number;
  minChunkSize: number;
  maxChunkSize: number;
}

/** A recommended chunk size, the numbers behind it, and why, in one line. */
export interface ChunkPlan {
  totalItems: number;
  workers: number;
  itemMs: number | null;
  targetChunkMs: number;
  chunkSize: number;
  chunkCount: number;
  /** How long one chunk should take at the measured speed, or null without a measurement. */
  estimatedChunkMs: number | null;
  reason: string;
}

const number = new Intl.NumberFormat('en-US');
const seconds = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;

/**
 * The chunk-size rule. Two limits, the smaller wins:
 * - every worker gets work: at most `floor(items / workers)` items a chunk, which makes at least
 *   as many chunks as workers (when there are at least as many items as workers);
 * - a chunk lasts about the target: `targetChunkMs / itemMs` items, when the queue's per-item time
 *   was measured on earlier runs.
 * The result stays within [minChunkSize, maxChunkSize] (the bounds win over both limits).
 */
export function planChunks(input: PlanInput): ChunkPlan {
  const { totalItems, itemMs, targetChunkMs, minChunkSize, maxChunkSize } = input;
  const workers = Math.max(1, input.workers);
  const fair = Math.max(1, Math.floor(totalItems / workers));
  const byTime =
    itemMs !== null && itemMs > 0 ? Math.max(1, Math.floor(targetChunkMs / itemMs)) : null;
  let size = byTime === null ? fair : Math.min(fair, byTime);
  let why: string;
  if (byTime !== null && byTime < fair) {
    why = `${number.format(byTime)} items last about ${seconds(targetChunkMs)} at ${itemMs} ms/item`;
  } else {
    why = `${number.format(fair)} items give each of ${workers} worker(s) a chunk`;
    if (byTime !== null)
      why += ` (the ${seconds(targetChunkMs)} target would allow ${number.format(byTime)})`;
    else why += ' (no per-item time measured on this queue yet)';
  }
  if (size > maxChunkSize) {
    size = maxChunkSize;
    why += `, capped at maxChunkSize ${number.format(maxChunkSize)}`;
  }
  if (size < minChunkSize) {
    size = Math.min(minChunkSize, totalItems);
    why += `, raised to minChunkSize ${number.format(minChunkSize)}`;
  }
  size = Math.max(1, Math.min(size, totalItems));
  const chunkCount = Math.ceil(totalItems / size);
  const estimatedChunkMs = itemMs === null ? null : size * itemMs;
  return {
    totalItems,
    workers: input.workers,
    itemMs,
    targetChunkMs,
    chunkSize: size,
    chunkCount,
    estimatedChunkMs,
    reason:
      `${number.format(totalItems)} items, ${input.workers} live worker(s): chunks of ${number.format(size)} ` +
      `(${number.format(chunkCount)} chunks) because ${why}` +
      (estimatedChunkMs === null ? '' : `; about ${seconds(estimatedChunkMs)} a chunk`),
  };
}
