import { Injectable } from '@nestjs/common';
import {
  CHECKPOINT_CONTEXT,
  CheckpointCtx,
  Checkpointed,
  CheckpointRuns,
  OnRunCompleted,
  type CheckpointContext,
  type Run,
  type RunChunkData,
} from 'nestjs-checkpoint';
import type { Job } from 'pg-boss';
import type { Observable } from 'rxjs';
import type { EntityManager } from 'typeorm';

const QUEUE = 'abstract-screening';

/** What every chunk of a run gets besides its items (`job.data.data`). */
interface Settings {
  model: string;
}

@Injectable()
export class AbstractRuns {
  constructor(private readonly runs: CheckpointRuns) {}

  /** Starting the same id again returns the same run and sends nothing. */
  start(projectId: string, abstractIds: number[]): Promise<Run> {
    return this.runs.start<number, Settings>(QUEUE, {
      id: `screening:${projectId}`,
      items: abstractIds, // each chunk job carries its own slice
      chunkSize: 'auto', // or a number
      data: { model: 'small' }, // the same for every chunk
    });
  }

  /** Summed over the chunks, from any process; completes with the run's final state. */
  progress(projectId: string): Observable<Run> {
    return this.runs.watch(`screening:${projectId}`);
  }

  /** Every chunk stops at its next batch boundary; what committed stays. */
  cancel(projectId: string): Promise<Run> {
    return this.runs.cancel(`screening:${projectId}`);
  }

  /** The chunk handler: an ordinary queue handler, with no `key` option. */
  @Checkpointed({ queue: QUEUE, batchSize: 50, transactional: true })
  async screen(
    job: Job<RunChunkData<number, Settings>>,
    @CheckpointCtx() ctx: CheckpointContext = CHECKPOINT_CONTEXT,
  ): Promise<number> {
    const { items, run, data } = job.data; // run: { id, chunk, chunks, offset }
    let screened = 0;
    for await (const batch of ctx.batches(items)) {
      await batch.manager.query('SELECT $1::text AS model, $2::int[] AS ids', [
        data?.model,
        batch.items,
      ]);
      screened += batch.items.length;
    }
    return run.offset + screened;
  }

  /** Once per completed run, in a transaction that records it ran: exactly once. */
  @OnRunCompleted(QUEUE)
  async screened(run: Run, manager: EntityManager): Promise<void> {
    await manager.query('SELECT $1::text AS finished, $2::int AS items', [run.id, run.totalItems]);
  }
}
