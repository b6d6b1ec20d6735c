// Purging a big table without stalling the work next to it: many short statements instead of
// one long DELETE. Each slice locks only the rows it removes, skips rows an attempt holds, and
// commits on its own; its size adapts so that a slice stays near SLICE_TARGET_MS, and the purge
// rests between slices (restAfter), so that it never takes the machine from the work beside it.
import { setTimeout as wait } from 'node:timers/promises';
import type { CheckpointRepository } from './checkpoint.repository.js';

/** What a purge removed. */
export interface PurgeCounts {
  /** Checkpoint keys removed. */
  keys: number;
  /** Failed-item ledger rows removed with their keys. */
  failedItems: number;
  /** Statements it took. */
  slices: number;
  /** The longest slice, in milliseconds: how long its rows stayed locked. */
  longestSliceMs: number;
}

/** What one slice of purgeSlice reports: its counts and the position it reached. */
interface SliceRow {
  keys: number;
  items: number;
  at: string;
  key: string;
}

/**
 * A slice aims at this duration: a fifth of the 100 ms a live attempt may wait for a row, so
 * that a slice slowed by a burst of load elsewhere still ends within it.
 */
const SLICE_TARGET_MS = 20;
/** The first slice's size, before any has been timed. */
export const FIRST_SLICE = 100;
const LEAST_SLICE = 10;
const MOST_SLICE = 500;

/**
 * How long to rest after a slice that took `ms`: as long again, so that the purge takes at most
 * half of a core and of the disk, and the work beside it keeps the rest.
 */
export function restAfter(ms: number): number {
  return Math.min(ms, 2 * SLICE_TARGET_MS);
}

/** The next slice's size after one of `size` rows took `ms`. */
export function nextSliceSize(size: number, ms: number): number {
  if (ms > SLICE_TARGET_MS) return Math.max(LEAST_SLICE, Math.floor(size / 2));
  if (ms < SLICE_TARGET_MS / 3) return Math.min(MOST_SLICE, size * 2);
  return size;
}

/**
 * Removes the keys in `state` not updated since `before`, slice by slice (see purgeSlice in
 * checkpoint.sql.ts), and says what went.
 */
export async function purgeKeys(
  repository: CheckpointRepository,
  state: string,
  before: Date,
): Promise<PurgeCounts> {
  const counts: PurgeCounts = { keys: 0, failedItems: 0, slices: 0, longestSliceMs: 0 };
  let after: [string, string] | null = null;
  let size = FIRST_SLICE;
  for (;;) {
    const started = performance.now();
    const { rows }: { rows: SliceRow[] } = await repository.run<SliceRow>(
      'purge',
      undefined,
      repository.sql.purgeSlice(state, before, after, size),
    );
    const ms = performance.now() - started;
    counts.slices += 1;
    counts.longestSliceMs = Math.max(counts.longestSliceMs, Math.round(ms * 10) / 10);
    const last: SliceRow | undefined = rows[0];
    if (last === undefined) return counts;
    counts.keys += last.keys;
    counts.failedItems += last.items;
    after = [last.at, last.key];
    size = nextSliceSize(size, ms);
    await wait(restAfter(ms));
  }
}
