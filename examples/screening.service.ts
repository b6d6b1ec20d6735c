import { Injectable } from '@nestjs/common';
import type { Job } from 'pg-boss';
import { CheckpointCtx, Checkpointed, type CheckpointContext } from '../src/index.js';
import { Decision } from './screening.entities.js';

/** One chunk of a screening run: items `from` (inclusive) to `to` (exclusive). */
export interface ScreeningChunk {
  runId: string;
  from: number;
  to: number;
  /** Simulated work per item, in milliseconds (a stand-in for an LLM call). */
  itemMs: number;
}

export const SCREENING_QUEUE = 'screening';

/**
 * The demo's batch job, written as the README tells a user to: a pg-boss worker whose progress
 * is checkpointed after every batch of 50, with the decisions written through `batch.manager`
 * so that they commit together with the checkpoint, or not at all.
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
    job: Job<ScreeningChunk>,
    @CheckpointCtx() ctx?: CheckpointContext,
  ): Promise<{ screened: number }> {
    const { runId, from, to, itemMs } = job.data;
    const context = ctx as CheckpointContext;
    const items = Array.from({ length: to - from }, (_, i) => from + i);
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
      const timer = setTimeout(resolve, itemMs * items.length);
      signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
    });
  }
  return items.map((item) => (item % 7 === 0 ? 'include' : 'exclude'));
}
