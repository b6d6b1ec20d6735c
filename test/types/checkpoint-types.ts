// Type tests: this file is compiled by `tsc -p tsconfig.json` (and so by `npm test`), never run.
// Each `@ts-expect-error` marks a form that must not compile: should it start compiling, tsc
// reports the directive as unused and the build fails.
import { Injectable } from '@nestjs/common';
import type { Job, JobWithMetadata } from 'pg-boss';
import {
  CHECKPOINT_CONTEXT,
  CheckpointCtx,
  CheckpointJobs,
  CheckpointModule,
  Checkpointed,
  type CheckpointContext,
} from '../../src/index.js';

interface Input {
  ids: string[];
}

// forRoot() with no argument: every default, no pg-boss.
export const defaults = CheckpointModule.forRoot();
export const withBossToken = CheckpointModule.forRoot({ bossToken: 'APP_BOSS' });

@Injectable()
export class TypedHandlers {
  // The context parameter typed non-optional, used without `!`; callers leave it out.
  @Checkpointed({ queue: 'screening', batchSize: 50 })
  async screen(
    job: Job<Input>,
    @CheckpointCtx() ctx: CheckpointContext = CHECKPOINT_CONTEXT,
  ): Promise<number> {
    let done = 0;
    for await (const batch of ctx.batches(job.data.ids)) done += batch.items.length;
    return done + ctx.resumeFrom;
  }

  // The module's worker passes one job with its metadata: that type is accepted too.
  @Checkpointed({ queue: 'with-metadata' })
  withMetadata(
    job: JobWithMetadata<Input>,
    @CheckpointCtx() ctx: CheckpointContext = CHECKPOINT_CONTEXT,
  ): Promise<number> {
    return Promise.resolve(job.retryLimit + ctx.attempt);
  }

  // A handler typed for pg-boss 12's job array does not compile under { queue }.
  // @ts-expect-error with `queue`, the first parameter must be one pg-boss Job, not an array
  @Checkpointed({ queue: 'arrays' })
  batchOfJobs(
    jobs: Job<Input>[],
    @CheckpointCtx() ctx: CheckpointContext = CHECKPOINT_CONTEXT,
  ): Promise<number> {
    return Promise.resolve(jobs.length + ctx.attempt);
  }

  // Nor does a first parameter that is no job at all.
  // @ts-expect-error with `queue`, the first parameter must be the pg-boss Job
  @Checkpointed({ queue: 'not-a-job' })
  notAJob(ids: string[]): Promise<number> {
    return Promise.resolve(ids.length);
  }

  // Without `queue` any first parameter goes, a job array included (a wrapper's handler).
  @Checkpointed({ key: (jobs: Job<Input>[]) => `wrapped:${jobs[0]?.id}` })
  wrapped(
    jobs: Job<Input>[],
    @CheckpointCtx() ctx: CheckpointContext = CHECKPOINT_CONTEXT,
  ): Promise<number> {
    return Promise.resolve(jobs.length + ctx.attempt);
  }
}

export async function callers(handlers: TypedHandlers, job: Job<Input>): Promise<number> {
  // Callers pass nothing for the context.
  const screened: number = await handlers.screen(job);
  // @ts-expect-error the input type is checked
  await handlers.screen({ id: 'x' });
  return screened;
}

export async function handWritten(jobs: CheckpointJobs, batch: Job<Input>[]): Promise<number> {
  const [job] = batch;
  if (job === undefined) return 0;
  // One job: the work's result, or undefined when shutdown handed the job back.
  const one: number | undefined = await jobs.run(job, async (ctx, same) => {
    for await (const part of ctx.batches(same.data.ids)) void part;
    return same.data.ids.length;
  });
  // pg-boss 12's job array: one result per job.
  const many: Array<number | undefined> = await jobs.run(batch, async (_ctx, each) =>
    Promise.resolve(each.data.ids.length),
  );
  // @ts-expect-error the result may be undefined (handed back at shutdown)
  const strict: number = await jobs.run(job, async () => Promise.resolve(1));
  return (one ?? 0) + many.length + strict;
}
