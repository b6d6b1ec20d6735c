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
/** "2.0 s", "75 s", or "0.4 ms" for chunks of a few fast items. */
const duration = (ms: number) =>
  ms < 1000 ? `${ms.toFixed(ms < 10 ? 1 : 0)} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
/** "1 item", "33,334 items". */
const itemCount = (n: number) => `${number.format(n)} item${n === 1 ? '' : 's'}`;

/**
 * The chunk-size rule. Two limits, the smaller wins:
 * - every worker gets work: one chunk per live worker (when there are at least as many items as
 *   workers);
 * - a chunk lasts about the target: `targetChunkMs / itemMs` items, when the queue's per-item time
 *   was measured on earlier runs.
 * The result stays within [minChunkSize, maxChunkSize] (the bounds win over both limits). The
 * rule gives a number of chunks; the items are then dealt out evenly (see chunkSlices), so that
 * chunks differ by at most one item: 100,000 items for 3 workers are 3 chunks of 33,334, 33,333
 * and 33,333, never 3 of 33,333 and a fourth of 1 that keeps one worker busy on its own.
 * `chunkSize` is the largest chunk.
 */
export function planChunks(input: PlanInput): ChunkPlan {
  const { totalItems, itemMs, targetChunkMs, minChunkSize, maxChunkSize } = input;
  const workers = Math.max(1, input.workers);
  const fairCount = Math.min(workers, totalItems);
  const fair = Math.ceil(totalItems / fairCount);
  const byTime =
    itemMs !== null && itemMs > 0 ? Math.max(1, Math.floor(targetChunkMs / itemMs)) : null;
  let count: number;
  let why: string;
  if (byTime !== null && byTime < fair) {
    count = Math.ceil(totalItems / byTime);
    why = `${itemCount(byTime)} last about ${duration(targetChunkMs)} at ${itemMs} ms/item`;
  } else {
    count = fairCount;
    const given = fairCount === workers ? `each of ${workers}` : `${fairCount} of the ${workers}`;
    why = `chunks of ${itemCount(fair)} give ${given} worker(s) one`;
    if (byTime !== null)
      why += ` (the ${duration(targetChunkMs)} target would allow ${number.format(byTime)})`;
    else why += ' (no per-item time measured on this queue yet)';
  }
  if (Math.ceil(totalItems / count) > maxChunkSize) {
    count = Math.ceil(totalItems / maxChunkSize);
    why += `, capped at maxChunkSize ${number.format(maxChunkSize)}`;
  }
  if (Math.floor(totalItems / count) < minChunkSize) {
    count = Math.max(1, Math.floor(totalItems / minChunkSize));
    why += `, raised to minChunkSize ${number.format(minChunkSize)}`;
  }
  count = Math.max(1, Math.min(count, totalItems));
  const size = Math.ceil(totalItems / count);
  const estimatedChunkMs = itemMs === null ? null : size * itemMs;
  return {
    totalItems,
    workers: input.workers,
    itemMs,
    targetChunkMs,
    chunkSize: size,
    chunkCount: count,
    estimatedChunkMs,
    reason:
      `${itemCount(totalItems)}, ${input.workers} live worker(s): ${number.format(count)} chunk${count === 1 ? '' : 's'} ` +
      `of ${sizes(totalItems, count)} because ${why}` +
      (estimatedChunkMs === null ? '' : `; about ${duration(estimatedChunkMs)} a chunk`),
  };
}

/** One chunk's share of a run's items. */
export interface ChunkSlice {
  /** Index of the chunk's first item in the run's items. */
  offset: number;
  size: number;
}

/**
 * `totalItems` dealt out to `chunkCount` chunks as evenly as whole items allow: sizes differ by
 * at most one, the larger chunks first.
 */
export function chunkSlices(totalItems: number, chunkCount: number): ChunkSlice[] {
  const count = Math.max(1, Math.min(chunkCount, totalItems));
  const base = Math.floor(totalItems / count);
  const larger = totalItems % count;
  return Array.from({ length: count }, (_, i) => ({
    offset: i * base + Math.min(i, larger),
    size: base + (i < larger ? 1 : 0),
  }));
}

/** "33,334" or "33,333-33,334": the chunk sizes of an even split, for the reason line. */
function sizes(totalItems: number, count: number): string {
  const small = Math.floor(totalItems / count);
  const large = Math.ceil(totalItems / count);
  return small === large ? number.format(small) : `${number.format(small)}-${number.format(large)}`;
}
