// How an application starts, follows and cancels runs (the README's "Runs" section quotes it).
import { Injectable } from '@nestjs/common';
import type { Observable } from 'rxjs';
import type { EntityManager } from 'typeorm';
import { CheckpointRuns, OnRunCompleted, type Run, type RunPlan } from '../src/index.js';
import { SCREENING_QUEUE, type ScreeningSettings } from './screening.service.js';

@Injectable()
export class ScreeningRuns {
  constructor(private readonly runs: CheckpointRuns) {}

  /** One run per project: starting it again returns the same run and sends nothing. */
  screen(projectId: string, abstractIds: number[]): Promise<Run> {
    return this.runs.start<number, ScreeningSettings>(SCREENING_QUEUE, {
      id: `screening:${projectId}`,
      items: abstractIds, // each chunk job carries its own slice
      chunkSize: 'auto', // from the live workers and the time per item of earlier runs
      data: { itemMs: 0 }, // the same for every chunk: job.data.data
    });
  }

  /** What 'auto' would choose now, and why, in one line (`plan.reason`). */
  plan(items: number): Promise<RunPlan> {
    return this.runs.plan(SCREENING_QUEUE, items, { targetChunkMs: 60_000 });
  }

  /** Progress summed over the chunks, from any process; ends with the run's final state. */
  progress(projectId: string): Observable<Run> {
    return this.runs.watch(`screening:${projectId}`);
  }

  /** Every chunk stops at its next batch boundary; what committed stays. */
  cancel(projectId: string): Promise<Run> {
    return this.runs.cancel(`screening:${projectId}`);
  }

  /** Once per completed run, in the transaction that records it ran: exactly once. */
  @OnRunCompleted(SCREENING_QUEUE)
  async screened(run: Run, manager: EntityManager): Promise<void> {
    await manager.query('SELECT $1::text AS finished', [run.id]);
  }
}
