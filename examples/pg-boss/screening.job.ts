// The work the three pg-boss examples share: screen a job's items, 50 at a time.
import type { Job } from 'pg-boss';
import type { CheckpointContext } from '../../src/index.js';

/** A job's input: the ids to screen. */
export interface ScreeningInput {
  ids: number[];
}

/** What a real job would do per batch (call an LLM, say); here it counts. */
export async function screenItems(
  job: Job<ScreeningInput>,
  ctx: CheckpointContext,
): Promise<{ screened: number }> {
  let screened = ctx.resumeFrom;
  for await (const batch of ctx.batches(job.data.ids)) {
    await batch.manager.query('SELECT 1'); // the batch's writes go through batch.manager
    screened += batch.items.length;
  }
  return { screened };
}
