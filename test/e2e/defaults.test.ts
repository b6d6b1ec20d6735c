// Safe defaults of @Checkpointed(): the input is fingerprinted unless told otherwise, a failed
// attempt is logged once with its key, attempt and error, and a resume never runs past the end
// of a shorter input.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Injectable, type INestApplicationContext, type LoggerService } from '@nestjs/common';
import {
  CheckpointCtx,
  Checkpointed,
  CheckpointInputChangedError,
  CheckpointService,
  CheckpointValidationError,
  type CheckpointContext,
} from '../../src/index.js';
import { inputDigest } from '../../src/attempt/fingerprint.js';
import { createTestApp } from '../support/app.js';
import { DATABASE_URL, dropSchema, uniqueSchema } from '../support/database.js';

const schema = uniqueSchema('defaults');

interface Input {
  key: string;
  items: number[];
}

/** Per key, the item whose batch throws (outside the arguments, so not in the fingerprint). */
const failAt = new Map<string, number>();

@Injectable()
class Jobs {
  @Checkpointed({ key: (input: Input) => input.key, batchSize: 10 })
  async byDefault(input: Input, @CheckpointCtx() ctx?: CheckpointContext): Promise<number> {
    return run(input, ctx);
  }

  @Checkpointed({ key: (input: Input) => input.key, batchSize: 10, fingerprint: false })
  async unchecked(input: Input, @CheckpointCtx() ctx?: CheckpointContext): Promise<number> {
    return run(input, ctx);
  }

  /** A queue handler called directly: its default fingerprint is the job's data only. */
  @Checkpointed({ queue: 'defaults-queue', batchSize: 10 })
  async queued(
    job: { id: string; retryCount: number; data: { items: number[] } },
    @CheckpointCtx() ctx?: CheckpointContext,
  ): Promise<number> {
    return run({ key: job.id, items: job.data.items }, ctx);
  }
}

async function run(input: Input, ctx: CheckpointContext | undefined): Promise<number> {
  let done = 0;
  for await (const batch of (ctx as CheckpointContext).batches(input.items)) {
    if (batch.startIndex === failAt.get(input.key)) {
      throw new Error(`boom at item ${batch.startIndex}`);
    }
    done += batch.items.length;
  }
  return done;
}

/** Collects what the library logs as errors. */
class CapturingLogger implements LoggerService {
  readonly errors: Array<{ message: string; context: string | undefined }> = [];
  log(): void {}
  warn(): void {}
  error(message: unknown, ...rest: unknown[]): void {
    const context = rest[rest.length - 1];
    this.errors.push({
      message: String(message),
      context: typeof context === 'string' ? context : undefined,
    });
  }
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
let app: INestApplicationContext;
let jobs: Jobs;
let service: CheckpointService;
const logger = new CapturingLogger();

before(async () => {
  app = await createTestApp({
    schema,
    providers: [Jobs],
    checkpoint: { boss: { connectionString: DATABASE_URL, schema: `${schema}_boss` } },
  });
  app.useLogger(logger);
  jobs = app.get(Jobs);
  service = app.get(CheckpointService);
});

after(async () => {
  await app.close();
  await dropSchema(schema);
  await dropSchema(`${schema}_boss`);
});

describe('the default fingerprint', () => {
  it('stops a resume on a changed input, and lets the same input resume', async () => {
    failAt.set('d1', 20);
    await assert.rejects(jobs.byDefault({ key: 'd1', items: range(0, 50) }), /boom/);
    failAt.delete('d1');
    // Another input under the same key: the old progress (item 20) would skip other items.
    await assert.rejects(
      jobs.byDefault({ key: 'd1', items: range(100, 150) }),
      (error: Error) =>
        error instanceof CheckpointInputChangedError &&
        /the input of checkpoint key "d1" changed since its last attempt/.test(error.message),
    );
    assert.equal((await service.find('d1'))?.currentIndex, 20, 'progress kept');
    // The same input, built anew, resumes at item 20.
    assert.equal(await jobs.byDefault({ items: range(0, 50), key: 'd1' }), 30);
  });

  it('is a digest of the arguments in a canonical form (key order does not matter)', () => {
    assert.equal(inputDigest({ a: 1, b: [1, 2] }), inputDigest({ b: [1, 2], a: 1 }));
    assert.notEqual(inputDigest({ a: 1 }), inputDigest({ a: 2 }));
    assert.match(inputDigest(range(0, 20_000)), /^[0-9a-f]{16}$/);
    // What JSON cannot hold never makes a call throw.
    const cyclic: Record<string, unknown> = { n: 10n };
    cyclic.self = cyclic;
    assert.match(inputDigest(cyclic), /^[0-9a-f]{16}$/);
  });

  it('is off with fingerprint: false: a changed input resumes at the stored index', async () => {
    failAt.set('d2', 20);
    await assert.rejects(jobs.unchecked({ key: 'd2', items: range(0, 50) }), /boom/);
    failAt.delete('d2');
    assert.equal(await jobs.unchecked({ key: 'd2', items: range(100, 150) }), 30);
  });

  it("digests a queue job's data, not its id or retry count", async () => {
    const job = { id: 'job-1', retryCount: 0, data: { items: range(0, 30) } };
    const stored = await service.claim('defaults-queue:job-1', {
      fingerprint: inputDigest(job.data),
    });
    await service.advance('defaults-queue:job-1', stored.epoch, { currentIndex: 10 });
    await service.release('defaults-queue:job-1', stored.epoch);
    assert.equal(await jobs.queued({ ...job, retryCount: 1 }), 20);
    failAt.set('job-2', 10);
    const other = { id: 'job-2', retryCount: 0, data: { items: range(0, 30) } };
    await assert.rejects(jobs.queued(other), /boom/);
    failAt.delete('job-2');
    await assert.rejects(
      jobs.queued({ ...other, retryCount: 1, data: { items: range(0, 31) } }),
      CheckpointInputChangedError,
    );
  });
});

describe('a resume on a shorter input', () => {
  it('is refused instead of completing past the end of the input', async () => {
    failAt.set('d3', 40);
    await assert.rejects(jobs.unchecked({ key: 'd3', items: range(0, 50) }), /boom/);
    failAt.delete('d3');
    await assert.rejects(
      jobs.unchecked({ key: 'd3', items: range(0, 25) }),
      (error: Error) =>
        error instanceof CheckpointValidationError &&
        /checkpoint key "d3" resumes at item 40 but the input has only 25 items/.test(
          error.message,
        ),
    );
    assert.notEqual((await service.find('d3'))?.state, 'completed');
  });
});

describe('a failed attempt', () => {
  it('is logged once per attempt with its key, attempt and error', async () => {
    const start = logger.errors.length;
    failAt.set('d4', 0);
    for (let attempt = 1; attempt <= 3; attempt++) {
      await assert.rejects(jobs.unchecked({ key: 'd4', items: range(0, 50) }));
    }
    const lines = logger.errors.slice(start);
    assert.deepEqual(
      lines.map((line) => [line.context, line.message]),
      [1, 2, 3].map((attempt) => [
        'Checkpoint',
        `Jobs.unchecked: attempt ${attempt} on "d4" failed: Error: boom at item 0`,
      ]),
    );
  });
});
