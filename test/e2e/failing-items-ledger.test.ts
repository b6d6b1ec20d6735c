// What the failed-item ledger keeps and says (issue 22): the error's class, code and message;
// a list that pages with a cursor and says when more follow; retry and skip policies per queue
// in the module options (the decorator's values win); and one log line per batch with failures
// in a 10,000-item run. Real PostgreSQL (and pg-boss for the queue methods).
import { ConsoleLogger, Injectable } from '@nestjs/common';
import type { Job } from 'pg-boss';
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  CheckpointConfigError,
  CheckpointCtx,
  CheckpointSkipLimitError,
  Checkpointed,
  FailedItemsService,
  type CheckpointContext,
  type CheckpointModuleOptions,
  type FailedItem,
} from '../../src/index.js';
import { Effect, createEffectTable } from '../fixtures/batch-job.js';
import {
  RateLimitError,
  RefusedItemError,
  TransactionalItemsJob,
  badItems,
  flakyItems,
} from '../fixtures/failing-items-job.js';
import { createTestApp } from '../support/app.js';
import { DATABASE_URL, dropSchema, sql, uniqueSchema } from '../support/database.js';
import { ITEMS, assertScreened } from '../support/failing-items.js';

const schemas: string[] = [];

after(async () => {
  for (const schema of schemas) {
    await dropSchema(schema);
    await dropSchema(`${schema}_boss`);
  }
});

async function freshSchema(prefix: string): Promise<string> {
  const schema = uniqueSchema(prefix);
  schemas.push(schema);
  await sql(`CREATE SCHEMA "${schema}"`);
  await sql(createEffectTable(schema));
  return schema;
}

/** An error class that keeps the default `name` ("Error"), with a string code. */
class ModelRefusal extends Error {
  readonly code = 'E_REFUSED';
}

/** An HTTP-ish error with a numeric code. */
class ApiError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

/** Fails items 3, 7 and 9 in three ways; skips anything. */
@Injectable()
class VariedFailuresJob {
  @Checkpointed({ key: () => 'varied', batchSize: 5, skip: { on: () => true } })
  async run(items: number[], @CheckpointCtx() ctx?: CheckpointContext): Promise<void> {
    for await (const batch of (ctx as CheckpointContext).batches(items)) {
      for (const item of batch.items) {
        if (item === 3) throw new ModelRefusal('the model refused item 3');
        if (item === 7) throw new ApiError('too many requests', 429);
        if (item === 9) throw 'a bare string'; // eslint-disable-line @typescript-eslint/only-throw-error -- the ledger must cope with it
      }
    }
  }
}

/** Refuses every even item: half of a batch of 200 goes to the ledger. */
@Injectable()
class ManyFailuresJob {
  @Checkpointed({
    key: () => 'many',
    batchSize: 200,
    transactional: true,
    skip: { on: [RefusedItemError] },
  })
  async run(items: number[], @CheckpointCtx() ctx?: CheckpointContext) {
    for await (const batch of (ctx as CheckpointContext).batches(items)) {
      const bad = batch.items.find((item) => item % 2 === 0);
      if (bad !== undefined) throw new RefusedItemError(`item ${bad} refused`);
    }
  }
}

describe('the ledger keeps the error and pages', () => {
  it("records the error's class, code and message (a thrown non-Error too)", async () => {
    const schema = await freshSchema('ledger_err');
    const app = await createTestApp({ schema, providers: [VariedFailuresJob] });
    try {
      await app.get(VariedFailuresJob).run(Array.from({ length: 12 }, (_, i) => i));
      const page = await app.get(FailedItemsService).list({ key: 'varied' });
      assert.deepEqual(
        page.items.map((item) => ({
          index: item.itemIndex,
          name: item.errorName,
          class: item.errorClass,
          code: item.errorCode,
          message: item.errorMessage,
        })),
        [
          {
            index: 3,
            name: 'Error',
            class: 'ModelRefusal',
            code: 'E_REFUSED',
            message: 'the model refused item 3',
          },
          { index: 7, name: 'Error', class: 'ApiError', code: 429, message: 'too many requests' },
          { index: 9, name: 'string', class: 'string', code: null, message: 'a bare string' },
        ],
      );
      assert.equal(page.more, false);
    } finally {
      await app.close();
    }
  });

  it('pages over more than one page with a cursor, saying when more follow', async () => {
    const schema = await freshSchema('ledger_page');
    const app = await createTestApp({ schema, entities: [Effect], providers: [ManyFailuresJob] });
    try {
      const items = Array.from({ length: 2_005 }, (_, i) => i);
      await app.get(ManyFailuresJob).run(items);
      const failedItems = app.get(FailedItemsService);
      const expected = items.filter((item) => item % 2 === 0);
      // The default page is 1,000 rows: the old list stopped there without a word.
      const pages: Array<{ count: number; more: boolean }> = [];
      const seen: FailedItem[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await failedItems.list({ key: 'many', after });
        pages.push({ count: page.items.length, more: page.more });
        seen.push(...page.items);
        if (!page.more) break;
        assert.ok(page.after !== null);
        after = page.after;
      }
      assert.deepEqual(pages, [
        { count: 1000, more: true },
        { count: 3, more: false },
      ]);
      assert.deepEqual(
        seen.map((item) => item.itemIndex),
        expected,
      );
      // A smaller page, exactly filled by the last rows: `more` is false on the last one.
      const small = await failedItems.list({ key: 'many', limit: 401 });
      assert.equal(small.more, true);
      const rest = await failedItems.list({
        key: 'many',
        limit: 602,
        after: small.after ?? undefined,
      });
      assert.equal(rest.items.length, 602);
      assert.equal(rest.more, false);
    } finally {
      await app.close();
    }
  });
});

/** Module policies only: the decorator gives none. */
@Injectable()
class ModulePolicyJob {
  readonly tries = new Map<number, number>();

  @Checkpointed({ queue: 'ledger-module', batchSize: 10 })
  async run(job: Job<{ bad: number[] }>, @CheckpointCtx() ctx?: CheckpointContext) {
    return runItems(ctx, job.data.bad, this.tries);
  }
}

/** The decorator's skip limit wins over the module's. */
@Injectable()
class DecoratorPolicyJob {
  readonly tries = new Map<number, number>();

  @Checkpointed({
    queue: 'ledger-decorator',
    batchSize: 10,
    skip: { on: [RefusedItemError], limit: { count: 5 } },
  })
  async run(job: Job<{ bad: number[] }>, @CheckpointCtx() ctx?: CheckpointContext) {
    return runItems(ctx, job.data.bad, this.tries);
  }
}

/** The decorator names the errors; the module gives the limit it leaves out. */
@Injectable()
class FilledPolicyJob {
  readonly tries = new Map<number, number>();

  @Checkpointed({
    queue: 'ledger-filled',
    batchSize: 10,
    skip: { on: [RefusedItemError] },
  })
  async run(job: Job<{ bad: number[] }>, @CheckpointCtx() ctx?: CheckpointContext) {
    return runItems(ctx, job.data.bad, this.tries);
  }
}

async function runItems(
  ctx: CheckpointContext | undefined,
  bad: number[],
  tries: Map<number, number>,
): Promise<void> {
  const items = Array.from({ length: 40 }, (_, i) => i);
  for await (const batch of (ctx as CheckpointContext).batches(items)) {
    for (const item of batch.items) {
      tries.set(item, (tries.get(item) ?? 0) + 1);
      if (bad.includes(item)) throw new RefusedItemError(`item ${item} refused`);
    }
  }
}

/** The job a queue worker would get (called directly here: the policies are the method's). */
const jobOf = (queue: string, id: string, bad: number[]) =>
  ({ id, name: queue, data: { bad } }) as unknown as Job<{ bad: number[] }>;

const bossOptions = (schema: string) => ({
  connectionString: DATABASE_URL,
  schema: `${schema}_boss`,
  max: 2,
  supervise: false,
});

describe('retry and skip policies per queue in the module options', () => {
  it('apply to the queue methods; the decorator wins field by field', async () => {
    const schema = await freshSchema('ledger_queues');
    const limitOne = { limit: { count: 1 } };
    const app = await createTestApp({
      schema,
      providers: [ModulePolicyJob, DecoratorPolicyJob, FilledPolicyJob],
      checkpoint: {
        boss: bossOptions(schema),
        queues: {
          'ledger-module': {
            retry: { limit: 2, backoff: { initialMs: 1 }, on: [RefusedItemError] },
            skip: { on: [RefusedItemError], ...limitOne },
          },
          'ledger-decorator': { skip: limitOne },
          'ledger-filled': { skip: limitOne },
        },
      },
    });
    try {
      // Module only: retried twice in place, replayed once, then skipped; the second bad item
      // exceeds the module's limit of 1.
      const moduleJob = app.get(ModulePolicyJob);
      const error = await moduleJob.run(jobOf('ledger-module', 'module', [13, 25])).then(
        () => assert.fail('the module skip limit of 1 must stop the attempt'),
        (thrown: unknown) => thrown,
      );
      assert.ok(error instanceof CheckpointSkipLimitError, String(error));
      assert.equal(error.itemIndex, 25);
      assert.equal(moduleJob.tries.get(13), 2 + 2, 'limit + 2 tries: the module retry applies');

      // The decorator's limit (5) wins: both bad items are skipped and the work completes.
      const decoratorJob = app.get(DecoratorPolicyJob);
      await decoratorJob.run(jobOf('ledger-decorator', 'decorator', [13, 25]));
      const ledger = await app.get(FailedItemsService).list({ key: 'ledger-decorator:decorator' });
      assert.deepEqual(
        ledger.items.map((item) => item.itemIndex),
        [13, 25],
      );
      assert.equal(decoratorJob.tries.get(13), 2, 'no retry policy: the batch, then the replay');

      // The decorator leaves the limit out: the module's limit of 1 fills it in.
      const filled = await app
        .get(FilledPolicyJob)
        .run(jobOf('ledger-filled', 'filled', [13, 25]))
        .then(
          () => assert.fail("the module's limit must apply"),
          (thrown: unknown) => thrown,
        );
      assert.ok(filled instanceof CheckpointSkipLimitError, String(filled));
    } finally {
      await app.close();
    }
  });

  it('a bad queue policy stops bootstrap with a CheckpointConfigError naming the field', async () => {
    const boot = async (checkpoint: Partial<CheckpointModuleOptions>) => {
      const schema = uniqueSchema('ledger_bad');
      schemas.push(schema);
      return createTestApp({ schema, providers: [FilledPolicyJob], checkpoint }).then(
        async (app) => {
          await app.close();
          return assert.fail('bootstrap must fail');
        },
        (thrown: unknown) => thrown,
      );
    };
    const schema = uniqueSchema('ledger_bad');
    schemas.push(schema);
    const invalid = await boot({
      boss: bossOptions(schema),
      queues: {
        'ledger-filled': {
          retry: { limit: -1, replayTries: 0 },
          skip: { limit: { ratio: 3 } },
          retries: 2,
        } as never,
      },
    });
    assert.ok(invalid instanceof CheckpointConfigError, String(invalid));
    assert.match(invalid.message, /queues\["ledger-filled"\]\.retry\.limit must be a whole number/);
    assert.match(invalid.message, /queues\["ledger-filled"\]\.retry\.replayTries must be/);
    assert.match(invalid.message, /queues\["ledger-filled"\]\.skip\.limit\.ratio must be/);
    assert.match(invalid.message, /unknown option "queues\["ledger-filled"\]\.retries"/);

    // Valid alone, but the merged retry policy names no errors: the method is named.
    const incomplete = await boot({
      boss: bossOptions(schema),
      queues: { 'ledger-filled': { retry: { limit: 3 } } },
    });
    assert.ok(incomplete instanceof CheckpointConfigError, String(incomplete));
    assert.match(incomplete.message, /FilledPolicyJob\.run/);
    assert.match(incomplete.message, /retry\.on must be a non-empty array/);
  });
});

/** Keeps the warnings of the 'Checkpoint' context, and prints errors only. */
class CapturingLogger extends ConsoleLogger {
  readonly warnings: string[] = [];

  constructor() {
    super({ logLevels: ['error'] });
  }

  override warn(message: unknown, ...rest: unknown[]): void {
    if (rest.at(-1) === 'Checkpoint') this.warnings.push(String(message));
  }
}

describe('log lines of a 10,000-item run with 1% bad items', () => {
  it('at most one warning per batch with failures', async (t) => {
    const schema = await freshSchema('ledger_log');
    const logger = new CapturingLogger();
    const app = await createTestApp({
      schema,
      entities: [Effect],
      providers: [TransactionalItemsJob],
      loggerService: logger,
    });
    try {
      const job = app.get(TransactionalItemsJob);
      const bad = badItems(ITEMS);
      const flaky = flakyItems(ITEMS);
      job.behaviour.bad = bad;
      job.behaviour.flaky = flaky;
      const items = Array.from({ length: ITEMS }, (_, i) => i);
      // An item never reached by a batch that spent its retries gets one replay try: a rate
      // limit there fails the attempt, and the next one (pg-boss's retry) resumes at it.
      let attempts = 1;
      for (; ; attempts++) {
        try {
          await job.run({ key: 'screening', items });
          break;
        } catch (error) {
          if (!(error instanceof RateLimitError) || attempts === 5) throw error;
        }
      }
      await assertScreened(schema, 'screening');

      const starts = logger.warnings.map((line) => {
        const match = /^"screening": batch at item (\d+) \((\d+) items\) met failures: /.exec(line);
        assert.ok(match !== null, `a batch summary: ${line}`);
        return { start: Number(match[1]), count: Number(match[2]), line };
      });
      t.diagnostic(
        `  ${logger.warnings.length} warnings for ${ITEMS} items, ${bad.size} bad and ${flaky.size} rate-limited once, ${attempts} attempts (383 before: one per failed try)`,
      );
      assert.equal(
        new Set(starts.map((entry) => entry.start)).size,
        starts.length,
        'one line per batch',
      );
      for (const { start, count, line } of starts) {
        const failing = items
          .slice(start, start + count)
          .some((item) => bad.has(item) || flaky.has(item));
        assert.ok(failing, `a batch with failures: ${line}`);
      }
      // Every batch holding a bad item has its line, and every bad item is in one of them.
      for (const item of bad) {
        assert.ok(
          starts.some(({ start, count }) => item >= start && item < start + count),
          `item ${item} has its batch's line`,
        );
      }
      assert.ok(starts.length <= Math.ceil(ITEMS / 50) + attempts);
    } finally {
      await app.close();
    }
  });
});
