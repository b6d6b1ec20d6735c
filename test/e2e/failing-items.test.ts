// Items that fail (issue 12): retry in place, item-by-item isolation into the failed-item
// ledger, the skip limit, redrive, plain mode. Real PostgreSQL; the 10,000-item runs and their
// SIGKILLs happen in child processes (test/fixtures/failing-items-worker.ts).
import type { INestApplicationContext } from '@nestjs/common';
import { Injectable } from '@nestjs/common';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  CheckpointAbortedError,
  CheckpointConfigError,
  CheckpointRuns,
  CheckpointCtx,
  CheckpointService,
  CheckpointSkipLimitError,
  Checkpointed,
  FailedItemsService,
  type CheckpointContext,
} from '../../src/index.js';
import { Effect, createEffectTable, sleep } from '../fixtures/batch-job.js';
import {
  ITEMS,
  assertScreened,
  checkpointRow,
  ledgerOf,
  runWorker,
  sorted,
  wrongEffects,
} from '../support/failing-items.js';
import {
  BrokenDatabaseError,
  LowLimitJob,
  PagedItemsJob,
  PlainItemsJob,
  RateLimitError,
  RetriedRefusalJob,
  SlowRetryJob,
  TransactionalItemsJob,
  badItems,
  flakyItems,
} from '../fixtures/failing-items-job.js';
import { createTestApp } from '../support/app.js';
import { dropSchema, sql, uniqueSchema } from '../support/database.js';
import { Child } from '../support/process.js';

const schemas: string[] = [];

after(async () => {
  for (const schema of schemas) await dropSchema(schema);
});

async function freshSchema(prefix: string): Promise<string> {
  const schema = uniqueSchema(prefix);
  schemas.push(schema);
  await sql(`CREATE SCHEMA "${schema}"`);
  await sql(createEffectTable(schema));
  return schema;
}

describe('items that fail: 10,000 items, batch 50, transactional', () => {
  let schema: string;
  const key = 'screening';

  before(async () => {
    schema = await freshSchema('items_tx');
  });

  it('1% always refused, 2% rate-limited once: completes, the ledger holds exactly the 1%, every other effect once', async (t) => {
    const started = performance.now();
    const lines = await runWorker({ SCHEMA: schema, KEY: key, ITEMS: String(ITEMS) });
    t.diagnostic(
      `  10,000 items with 100 refused and 200 rate-limited once: ${((performance.now() - started) / 1000).toFixed(1)} s (process start included)`,
    );
    // Batch 1150-1199 meets 4 rate-limited items before item 1187, so it spends its 3 retries and
    // is replayed with one try per item (replayTries 1); 1187, never reached by the batch, is
    // rate-limited on that try: the attempt fails there, and the next one resumes at 1187 and
    // passes it (its batches now start at 1187: 7626 meets the same fate). Before replayTries
    // the replay gave such an item the whole retry budget again, and one attempt did it all.
    const failedAttempts = lines.filter((line) => line.startsWith('attempt failed '));
    t.diagnostic(`  failed attempts: ${failedAttempts.join('; ') || 'none'}`);
    const flaky = flakyItems(ITEMS);
    for (const line of failedAttempts) {
      assert.ok(flaky.has(Number(/item (\d+)$/.exec(line)?.[1])), line);
    }
    await assertScreened(schema, key);

    // Progress, find, list and the ledger service show the skipped items.
    const app = await createTestApp({ schema });
    try {
      const service = app.get(CheckpointService);
      assert.equal((await service.getProgress(key))?.skippedItems, 100);
      assert.equal((await service.find(key))?.skippedItems, 100);
      const listed = (await service.list()).items;
      assert.equal(listed.find((record) => record.key === key)?.skippedItems, 100);
      const failed = (await app.get(FailedItemsService).list({ key })).items;
      assert.equal(failed.length, 100);
      assert.equal(failed[0].errorName, 'RefusedItemError');
      assert.equal(failed[0].attempt, 1);
    } finally {
      await app.close();
    }
  });

  it('redrive after half the items are fixed: only ledger items run, the fixed ones once, the others stay with the new error', async () => {
    const bad = badItems(ITEMS);
    const lines = await runWorker({
      SCHEMA: schema,
      KEY: key,
      ITEMS: String(ITEMS),
      REDRIVE: '1',
      FIXED: 'odd',
    });
    assert.ok(lines.includes('redrive asked 100'));
    const seen = JSON.parse(
      (lines.find((line) => line.startsWith('seen ')) as string).slice(5),
    ) as Array<{ mode: string; startIndex: number; count: number }>;
    assert.ok(seen.every((call) => call.mode === 'redrive' && call.count === 1));
    assert.deepEqual(sorted(new Set(seen.map((call) => call.startIndex))), sorted(bad));
    const odd = (item: number) => item % 2 === 1;
    assert.deepEqual(
      await wrongEffects(schema, ITEMS, (item) => (bad.has(item) && !odd(item) ? 0 : 1)),
      [],
    );
    const ledger = await ledgerOf(schema, key);
    assert.deepEqual(
      ledger.map((row) => Number(row.item_index)),
      sorted([...bad].filter((item) => !odd(item))),
    );
    // The redrive's attempt is the key's last one (the first run took two, see above).
    const [{ attempt }] = await sql<{ attempt: number }>(
      `SELECT attempt FROM "${schema}".checkpoint WHERE key = $1`,
      [key],
    );
    assert.ok(
      ledger.every((row) => row.attempt === attempt),
      'failed again in the redrive attempt',
    );
    const row = await checkpointRow(schema, key);
    assert.equal(row.state, 'completed');
    assert.equal(Number(row.skipped_items), ledger.length);
    assert.equal(row.redrive_requested_at, null);
  });

  it('redrive after all are fixed, killed inside a redriven item and resumed: each effect once, ledger empty, completed', async () => {
    const bad = badItems(ITEMS);
    const env = { SCHEMA: schema, KEY: key, ITEMS: String(ITEMS), FIXED: 'all' };
    const killed = Child.start('failing-items-worker', {
      ...env,
      REDRIVE: '1',
      CRASH_REDRIVE: '7',
    });
    const exit = await killed.exited;
    assert.equal(exit.signal, 'SIGKILL', `the redrive was killed; stderr: ${killed.stderr}`);
    // The request survives the crash: the next call finishes the redrive without asking again.
    const lines = await runWorker(env);
    assert.ok(lines.some((line) => line.startsWith('redrive ')));
    assert.deepEqual(await wrongEffects(schema, ITEMS, () => 1), []);
    assert.deepEqual(await ledgerOf(schema, key), []);
    const row = await checkpointRow(schema, key);
    assert.equal(row.state, 'completed');
    assert.equal(Number(row.skipped_items), 0);
    assert.equal(row.redrive_requested_at, null);
    void bad;
  });
});

describe('items that fail: in-process', () => {
  let schema: string;
  let app: INestApplicationContext;
  const items = Array.from({ length: 1000 }, (_, i) => i);

  before(async () => {
    schema = await freshSchema('items_inproc');
    app = await createTestApp({
      schema,
      entities: [Effect],
      providers: [
        TransactionalItemsJob,
        LowLimitJob,
        PlainItemsJob,
        SlowRetryJob,
        PagedItemsJob,
        RetriedRefusalJob,
      ],
    });
  });

  after(async () => {
    await app?.close();
  });

  const clearEffects = () => sql(`DELETE FROM "${schema}".effect`);

  it('skip limit reached: typed error, progress and ledger kept; a higher limit resumes where it stopped', async () => {
    await clearEffects();
    const bad = new Set([100, 250, 400, 520, 800]);
    const low = app.get(LowLimitJob);
    low.behaviour.bad = bad;
    const error = await low.run({ key: 'limit', items }).then(
      () => assert.fail('the fourth refused item exceeds a limit of 3'),
      (thrown: unknown) => thrown,
    );
    assert.ok(error instanceof CheckpointSkipLimitError, String(error));
    assert.equal(error.itemIndex, 520);
    assert.equal(error.skippedItems, 3);
    assert.match(error.message, /skip limit \(3 items; 3 already in the ledger\) at item 520/);
    const failed = await checkpointRow(schema, 'limit');
    assert.equal(failed.state, 'failed');
    assert.equal(Number(failed.current_index), 520);
    assert.equal(failed.error?.name, 'CheckpointSkipLimitError');
    assert.deepEqual(
      (await ledgerOf(schema, 'limit')).map((row) => Number(row.item_index)),
      [100, 250, 400],
    );

    const high = app.get(TransactionalItemsJob);
    high.behaviour.bad = bad;
    await high.run({ key: 'limit', items });
    assert.equal(high.behaviour.seen[0].startIndex, 520, 'resumed at the item that stopped it');
    assert.deepEqual(
      (await ledgerOf(schema, 'limit')).map((row) => Number(row.item_index)),
      sorted(bad),
    );
    // No item redone: every good item's effect exactly once across both attempts.
    assert.deepEqual(
      await wrongEffects(schema, items.length, (item) => (bad.has(item) ? 0 : 1)),
      [],
    );
    assert.equal((await checkpointRow(schema, 'limit')).state, 'completed');
  });

  it('a bad item that spends its batch retries is tried exactly limit + 2 times (default replayTries), then skipped', async () => {
    await clearEffects();
    const job = app.get(RetriedRefusalJob);
    job.behaviour.bad = new Set([130, 131, 777]);
    await job.run({ key: 'replay-tries', items });
    const limit = 3;
    // 130: its batch (100-149) fails limit + 1 times on it, then the replay tries it once more.
    // 131 comes after it: never reached by the batch, it gets its one replay try.
    assert.deepEqual(
      [130, 131, 777].map((item) => job.behaviour.tries.get(item)),
      [limit + 2, 1, limit + 2],
    );
    assert.deepEqual(
      (await ledgerOf(schema, 'replay-tries')).map((row) => [
        Number(row.item_index),
        row.error_name,
      ]),
      [
        [130, 'RefusedItemError'],
        [131, 'RefusedItemError'],
        [777, 'RefusedItemError'],
      ],
    );
    assert.equal((await checkpointRow(schema, 'replay-tries')).state, 'completed');
  });

  it('an error no policy names fails the attempt as before; the ledger holds only skipped items', async () => {
    await clearEffects();
    const job = app.get(TransactionalItemsJob);
    job.behaviour.bad = new Set([10]);
    job.behaviour.broken = new Set([60]);
    await assert.rejects(job.run({ key: 'broken', items }), BrokenDatabaseError);
    const row = await checkpointRow(schema, 'broken');
    assert.equal(row.state, 'failed');
    assert.equal(Number(row.current_index), 50);
    assert.deepEqual(
      (await ledgerOf(schema, 'broken')).map((r) => Number(r.item_index)),
      [10],
    );
    job.behaviour.broken = new Set();
  });

  it('plain mode: a replayed batch applies its items at least once; the rest exactly once', async () => {
    await clearEffects();
    const job = app.get(PlainItemsJob);
    job.behaviour.bad = new Set([30, 260]);
    job.behaviour.flaky = new Set([120]);
    await job.run({ key: 'plain', items });
    assert.deepEqual(
      (await ledgerOf(schema, 'plain')).map((row) => Number(row.item_index)),
      [30, 260],
    );
    // Without a transaction nothing is rolled back: the items a failing batch wrote before the
    // failing item are written again by its retry (100-119) or by its replay (0-29, 250-259).
    const twice = (item: number) =>
      (item >= 0 && item < 30) || (item >= 100 && item < 120) || (item >= 250 && item < 260);
    assert.deepEqual(
      await wrongEffects(schema, items.length, (item) =>
        item === 30 || item === 260 ? 0 : twice(item) ? 2 : 1,
      ),
      [],
    );
    const row = await checkpointRow(schema, 'plain');
    assert.equal(row.state, 'completed');
    assert.equal(Number(row.skipped_items), 2);
  });

  it('pages(): a skipped item moves the stored cursor past it; a redrive yields the stored items', async () => {
    await clearEffects();
    const job = app.get(PagedItemsJob);
    job.behaviour.bad = new Set([37, 260, 999]);
    job.behaviour.flaky = new Set([120]);
    await job.run({ key: 'paged', items });
    assert.deepEqual(
      (await ledgerOf(schema, 'paged')).map((row) => Number(row.item_index)),
      [37, 260, 999],
    );
    assert.deepEqual(
      await wrongEffects(schema, items.length, (item) => (job.behaviour.bad.has(item) ? 0 : 1)),
      [],
    );
    const [row] = await sql<{ cursor: number; state: string }>(
      `SELECT cursor, state FROM "${schema}".checkpoint WHERE key = 'paged'`,
    );
    assert.equal(row.cursor, 999, 'the last item, skipped, is the stored cursor');
    assert.equal(row.state, 'completed');

    job.behaviour.fixed = new Set(job.behaviour.bad);
    job.behaviour.seen.length = 0;
    await app.get(FailedItemsService).redrive('paged');
    await job.run({ key: 'paged', items });
    assert.deepEqual(
      job.behaviour.seen.map((call) => `${call.mode} ${call.startIndex}`),
      ['redrive 37', 'redrive 260', 'redrive 999'],
    );
    assert.deepEqual(await wrongEffects(schema, items.length, () => 1), []);
    assert.deepEqual(await ledgerOf(schema, 'paged'), []);
  });

  it('a run: list and redrive every chunk by run id; a running key is left alone', async () => {
    await clearEffects();
    const job = app.get(TransactionalItemsJob);
    job.behaviour.bad = new Set([5, 70]);
    job.behaviour.fixed = new Set();
    const chunk = items.slice(0, 100);
    await job.run({ key: 'run-1:a', items: chunk });
    await job.run({ key: 'run-1:b', items: chunk });
    // Runs are another room's (issue 11); a chunk is a key whose run_id names the run. The run
    // row comes first, as start() writes it: its counts follow its chunks from then on.
    await sql(
      `INSERT INTO "${schema}".run (id, queue, state, mode, total_items, chunk_count, chunk_size)
       VALUES ('run-1', 'items', 'running', 'queued', 200, 2, 100)`,
    );
    await sql(`UPDATE "${schema}".checkpoint SET run_id = 'run-1' WHERE key LIKE 'run-1:%'`);
    const runs = app.get(CheckpointRuns);
    assert.equal((await runs.get('run-1'))?.skippedItems, 4, "the run sums its chunks' ledgers");
    const failedItems = app.get(FailedItemsService);
    const listed = (await failedItems.list({ runId: 'run-1' })).items;
    assert.deepEqual(
      listed.map((item) => `${item.key} ${item.itemIndex}`),
      ['run-1:a 5', 'run-1:a 70', 'run-1:b 5', 'run-1:b 70'],
    );
    await sql(`UPDATE "${schema}".checkpoint SET state = 'running' WHERE key = 'run-1:b'`);
    assert.deepEqual(await failedItems.redriveRun('run-1'), {
      keys: ['run-1:a'],
      items: 2,
      sent: [],
    });
    await sql(`UPDATE "${schema}".checkpoint SET state = 'completed' WHERE key = 'run-1:b'`);
    assert.deepEqual((await failedItems.redriveRun('run-1')).keys.sort(), ['run-1:a', 'run-1:b']);
    job.behaviour.fixed = new Set(job.behaviour.bad);
    await job.run({ key: 'run-1:a', items: chunk });
    await job.run({ key: 'run-1:b', items: chunk });
    assert.deepEqual((await failedItems.list({ runId: 'run-1' })).items, []);
    assert.equal((await runs.get('run-1'))?.skippedItems, 0);
    assert.deepEqual(await wrongEffects(schema, 100, () => 2), []);
    job.behaviour.bad = new Set();
    job.behaviour.fixed = new Set();
  });

  it('the attempt signal cuts a retry backoff short', async (t) => {
    const job = app.get(SlowRetryJob);
    const running = job.run({ key: 'slow', items });
    running.catch(() => undefined);
    while (job.failures === 0) await sleep(5);
    await sleep(50); // now, most likely, in the hour-long backoff
    const started = performance.now();
    app.get(CheckpointService).stopAttempts();
    // The backoff lasts an hour: the attempt ends within the bound only if the signal ended it.
    let bound: NodeJS.Timeout | undefined;
    await assert.rejects(
      Promise.race([
        running,
        new Promise((_, reject) => {
          bound = setTimeout(() => reject(new Error('the backoff was not cut short')), 120_000);
        }),
      ]),
      CheckpointAbortedError,
    );
    clearTimeout(bound);
    t.diagnostic(
      `  backoff of an hour interrupted by the signal in ${(performance.now() - started).toFixed(0)} ms`,
    );
    // One try, and no retry after the backoff: the batch ran once.
    assert.equal(job.failures, 1);
    assert.equal((await checkpointRow(schema, 'slow')).state, 'released');
  });
});

describe('items that fail: options checked at bootstrap', () => {
  it('names each bad retry or skip option', async () => {
    @Injectable()
    class BadOptionsJob {
      @Checkpointed({
        key: () => 'bad',
        retry: { limit: -1, on: [], backoff: { factor: 0.5 } },
        skip: { on: [RateLimitError], limit: { count: 2, ratio: 0.1 } as never },
      })
      async run(@CheckpointCtx() ctx?: CheckpointContext): Promise<void> {
        await Promise.resolve(ctx);
      }
    }
    const schema = uniqueSchema('items_opts');
    schemas.push(schema);
    const error = await createTestApp({ schema, providers: [BadOptionsJob] }).then(
      async (app) => {
        await app.close();
        return assert.fail('bootstrap must fail');
      },
      (thrown: unknown) => thrown,
    );
    assert.ok(error instanceof CheckpointConfigError, String(error));
    assert.match(error.message, /BadOptionsJob\.run/);
    assert.match(error.message, /retry\.limit must be a whole number >= 0 \(got -1\)/);
    assert.match(
      error.message,
      /retry\.on must be a non-empty array of error classes, or a predicate/,
    );
    assert.match(error.message, /retry\.backoff\.factor must be a number >= 1 \(got 0\.5\)/);
    assert.match(error.message, /skip\.limit must be \{ count: n \} or \{ ratio: r \}/);
  });
});
