import { Injectable } from '@nestjs/common';
import type { Job } from 'pg-boss';
import {
  CheckpointCtx,
  Checkpointed,
  type CheckpointContext,
  type RunChunkData,
} from '../src/index.js';
import { Decision } from './screening.entities.js';

/** Settings every chunk of a screening run gets (`data` of `runs.start()`). */
export interface ScreeningSettings {
  /** Simulated work per item, in milliseconds (a stand-in for an LLM call). */
  itemMs: number;
}

export const SCREENING_QUEUE = 'screening';

/**
 * The demo's chunk handler, written as the README tells a user to: an ordinary pg-boss worker
 * that gets one chunk of a run (`CheckpointRuns.start()` split the items), checkpointed after
 * every batch of 50, with the decisions written through `batch.manager` so that they commit
 * together with the checkpoint, or not at all.
 */
@Injectable()
export class ScreeningService {
  @Checkpointed({
    queue: SCREENING_QUEUE,
    batchSize: 50,
    transactional: true,
    localConcurrency: 2,
    pollingIntervalSeconds: 0.5,
    retryLimit: 10,
  })
  async screen(
    job: Job<RunChunkData<number, ScreeningSettings>>,
    @CheckpointCtx() ctx?: CheckpointContext,
  ): Promise<{ screened: number }> {
    const { items, run, data } = job.data;
    const itemMs = data?.itemMs ?? 0;
    const runId = run.id;
    const context = ctx as CheckpointContext;
    for await (const batch of context.batches(items)) {
      const verdicts = await classify(batch.items, itemMs, context.signal);
      await batch.manager.insert(
        Decision,
        batch.items.map((item, i) => ({
          runId,
          item,
          verdict: verdicts[i] ?? 'exclude',
          attempt: context.attempt,
        })),
      );
    }
    return { screened: items.length };
  }
}

/** A stand-in for the slow part (an LLM, say): `itemMs` per item, stopped early by `signal`. */
async function classify(
  items: number[],
  itemMs: number,
  signal: AbortSignal,
): Promise<Array<'include' | 'exclude'>> {
  if (itemMs > 0) {
    await new Promise<void>((resolve) => {
      const stop = () => (clearTimeout(timer), resolve());
      // Removed when the batch is done: one listener per batch would pile up on the signal.
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', stop);
        resolve();
      }, itemMs * items.length);
      signal.addEventListener('abort', stop, { once: true });
    });
  }
  return items.map((item) => (item % 7 === 0 ? 'include' : 'exclude'));
}
