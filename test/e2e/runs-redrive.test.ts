// A redrive that finishes the job (issue 22, point 5): a run whose 1% bad items landed in the
// ledger is redriven after the items were made good, with worker processes SIGKILLed inside
// redriven items, and nobody sends a job by hand. Real PostgreSQL, pg-boss and processes.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { FailedItemsService, type FailedItem } from '../../src/index.js';
import { badItems } from '../fixtures/failing-items-job.js';
import { LEDGER_QUEUE, createBadItemTable } from '../fixtures/ledger-run-job.js';
import { sql } from '../support/database.js';
import type { Child } from '../support/process.js';
import { range, runsTestBed, sleep } from '../support/runs.js';

const { setUp } = runsTestBed();
const ITEMS = 10_000;
const RUN = 'ledger-run';

describe('redrive of a run', () => {
  it('1% bad items made good, chosen items then the whole run redriven under SIGKILLs: each effect once, ledger empty, completed', async (t: TestContext) => {
    const { schema, start, app, runs } = await setUp('rredrive', { REDRIVE_DELAY_MS: '30' });
    const failedItems = app.get(FailedItemsService);
    const bad = badItems(ITEMS);
    await sql(createBadItemTable(schema));
    await sql(`INSERT INTO "${schema}".bad_item SELECT unnest($1::int[])`, [[...bad]]);
    const effects = async () =>
      new Map(
        (
          await sql<{ item: number; n: number }>(
            `SELECT item, count(*)::int AS n FROM "${schema}".run_effect GROUP BY item`,
          )
        ).map((row) => [row.item, row.n]),
      );
    const ledger = async (): Promise<FailedItem[]> =>
      (await failedItems.list({ runId: RUN, limit: 10_000 })).items;
    // The states get() reads every 50 ms, each change once, until the run reads completed.
    const statesUntilCompleted = async (): Promise<string[]> => {
      const seen: string[] = [];
      for (const started = Date.now(); seen.at(-1) !== 'completed'; await sleep(50)) {
        if (Date.now() - started > 240_000) assert.fail(`not completed: ${seen.join(' ')}`);
        const state = (await runs.get(RUN))?.state ?? 'missing';
        if (state !== seen.at(-1)) seen.push(state);
      }
      return seen;
    };
    const spawn = (env: Record<string, string> = {}) => start('ledger-run-worker', env);
    const ready = (workers: Child[]) =>
      Promise.all(workers.map((worker) => worker.waitFor((line) => line.startsWith('ready'))));

    // The run: its bad items land in the ledger, every other item has its effect once.
    let workers = [spawn(), spawn()];
    await ready(workers);
    await runs.start(LEDGER_QUEUE, { id: RUN, items: range(ITEMS), chunkSize: 500 });
    await statesUntilCompleted();
    const chunks = await runs.chunks(RUN);
    const offsetOf = new Map(chunks.map((chunk) => [chunk.key, chunk.index * 500]));
    const itemOf = (row: FailedItem) => (offsetOf.get(row.key) ?? NaN) + row.itemIndex;
    const before = await ledger();
    assert.deepEqual(
      before.map(itemOf).sort((a, b) => a - b),
      [...bad].sort((a, b) => a - b),
    );
    let counts = await effects();
    assert.equal(counts.size, ITEMS - bad.size);
    assert.ok([...counts.values()].every((n) => n === 1));

    // Chosen items: one made good and redriven with an index not in the ledger; its chunk's job
    // is sent again, only that item runs, the other items of its ledger stay as they were.
    const first = before[0];
    const rest = before.filter((row) => row.key === first.key && row !== first);
    await sql(`DELETE FROM "${schema}".bad_item WHERE item = $1`, [itemOf(first)]);
    const chosen = await failedItems.redrive(first.key, { items: [first.itemIndex, 499] });
    assert.deepEqual(chosen, { keys: [first.key], items: 1, sent: [first.key] });
    assert.equal((await runs.get(RUN))?.state, 'running', 'running once the redrive is asked');
    assert.deepEqual(await statesUntilCompleted(), ['running', 'completed']);
    counts = await effects();
    assert.equal(counts.get(itemOf(first)), 1);
    const after = await ledger();
    assert.equal(after.length, before.length - 1);
    for (const row of rest) {
      const now = after.find((item) => item.key === row.key && item.itemIndex === row.itemIndex);
      assert.deepEqual(now, row, `item ${row.itemIndex} of ${row.key} was not tried again`);
    }

    // The whole run: the items are made good and the run redriven while no worker is alive, so
    // nothing runs before get() is read; then workers SIGKILL themselves inside redriven items.
    await Promise.all(workers.map((worker) => worker.kill('SIGTERM')));
    await sql(`DELETE FROM "${schema}".bad_item`);
    const asked = await failedItems.redriveRun(RUN);
    const ledgerKeys = [...new Set(after.map((row) => row.key))].sort();
    assert.deepEqual(asked.keys.sort(), ledgerKeys);
    assert.deepEqual(asked.sent.sort(), ledgerKeys, 'every chunk with ledger items sent again');
    assert.equal(asked.items, after.length);
    assert.equal((await runs.get(RUN))?.state, 'running');
    assert.deepEqual(
      (await runs.list({ state: 'running' })).items.map((run) => run.id),
      [RUN],
    );
    const states = statesUntilCompleted();
    const crash = () => ({ CRASH_REDRIVE: String(1 + Math.floor(Math.random() * 5)) });
    workers = [spawn(crash()), spawn(crash())];
    let kills = 0;
    while (kills < 6) {
      const i = await Promise.race(workers.map((worker, index) => worker.exited.then(() => index)));
      const exit = await workers[i].exited;
      assert.equal(exit.signal, 'SIGKILL', workers[i].stderr);
      kills += 1;
      workers[i] = spawn(kills < 6 ? crash() : {});
    }
    const seen = await states;
    t.diagnostic(
      `${after.length} items redriven over ${asked.keys.length} chunks, ${kills} SIGKILLs inside redriven items; get() read ${seen.join(' -> ')}`,
    );
    assert.deepEqual(seen, ['running', 'completed']);

    counts = await effects();
    assert.equal(counts.size, ITEMS, 'every item has its effect');
    assert.deepEqual(
      [...counts].filter(([, n]) => n !== 1),
      [],
      'each effect once',
    );
    assert.deepEqual(await ledger(), []);
    const run = await runs.get(RUN);
    assert.equal(run?.state, 'completed');
    assert.equal(run?.chunks.completed, 20);
    assert.equal(run?.skippedItems, 0);
    const [hooks] = await sql<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${schema}".run_hook_effect WHERE run_id = $1`,
      [RUN],
    );
    assert.equal(hooks?.n, 1, 'the completion hook ran once');
    // Sent again by the redrive, under their own ids: one job per chunk, all completed.
    const jobs = await sql<{ state: string; n: number }>(
      `SELECT state, count(*)::int AS n FROM "${schema}_boss".job WHERE name = $1 GROUP BY state`,
      [LEDGER_QUEUE],
    );
    assert.deepEqual(jobs, [{ state: 'completed', n: 20 }]);
    await Promise.all(workers.map((worker) => worker.kill('SIGTERM')));
  });
});
