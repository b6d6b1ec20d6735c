// The dashboard as an operator's console, in a real headless Chromium (Debian's /usr/bin/chromium
// driven by playwright-core), on a run worked by pg-boss in the application itself: without a
// session the page shows only "sign in" and no data request succeeds; a reader sees data and no
// control (no Retry on a failed key); an operator opens a run's detail (chunks, ledger, throughput
// chart) and redrives a ledger item from it (its effect once, the ledger row gone), and retries a
// failed key (it runs again and completes); search finds a key by its pg-boss job id. The
// screenshot in docs/dashboard.png comes from here (UPDATE_SCREENSHOT=1).
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { Injectable } from '@nestjs/common';
import type { Job, PgBoss } from 'pg-boss';
import { chromium, type Browser, type BrowserContext, type Response } from 'playwright-core';
import {
  CHECKPOINT_BOSS,
  CheckpointCtx,
  Checkpointed,
  CheckpointRuns,
  type CheckpointContext,
  type RunChunkData,
} from '../../src/index.js';
import { DATABASE_URL, dropSchema, sql, uniqueSchema } from '../support/database.js';
import {
  createHttpApp,
  OPERATOR,
  OperatorGuard,
  READER,
  SESSION_COOKIE,
  SessionGuard,
  type HttpTestApp,
} from '../support/http.js';
import { waitUntil } from '../support/wait.js';

const schema = uniqueSchema('console');
/** docs/dashboard.png when asked for (UPDATE_SCREENSHOT=1); a test run leaves the tree clean. */
const UPDATE_SCREENSHOT = process.env.UPDATE_SCREENSHOT === '1';
const SCREENSHOT = UPDATE_SCREENSHOT
  ? fileURLToPath(new URL('../../../docs/dashboard.png', import.meta.url))
  : join(tmpdir(), `${schema}-dashboard.png`);
const QUEUE = 'screening';
const RUN = 'screening-2026-12';
const ITEMS = 60;
/** The item the model refuses until it is "fixed": it lands in the ledger. */
const BAD = 27;
/** Its index in its chunk (chunks of 20): the ledger counts items per chunk. */
const BAD_IN_CHUNK = BAD % 20;
/** A second refused item of the same chunk: it stays in the ledger until it is chosen. */
const OTHER = 33;
const OTHER_IN_CHUNK = OTHER % 20;

class RefusedItemError extends Error {
  override name = 'RefusedItemError';
}

const refused = new Set([BAD, OTHER]);

/** A chunk handler as a user writes one: each item's effect a row, in the batch's transaction. */
@Injectable()
class ScreeningChunks {
  @Checkpointed({
    queue: QUEUE,
    batchSize: 5,
    transactional: true,
    skip: { on: [RefusedItemError], limit: { count: 5 } },
    retryLimit: 2,
    retryDelay: 0,
    pollingIntervalSeconds: 0.5,
  })
  async work(job: Job<RunChunkData<number>>, @CheckpointCtx() ctx?: CheckpointContext) {
    const context = ctx as CheckpointContext;
    for await (const batch of context.batches(job.data.items)) {
      const bad = batch.items.find((item) => refused.has(item));
      if (bad !== undefined) throw new RefusedItemError(`item ${bad}: the model refused to answer`);
      await batch.manager.query(`INSERT INTO "${schema}".effect (item) SELECT unnest($1::int[])`, [
        batch.items,
      ]);
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
    return job.data.items.length;
  }
}

/** A queue whose upstream is down until the operator's Retry: its job fails for good. */
const IMPORTS = 'imports';
const upstream = { down: true };

@Injectable()
class Imports {
  @Checkpointed({
    queue: IMPORTS,
    batchSize: 5,
    transactional: true,
    retryLimit: 0,
    pollingIntervalSeconds: 0.5,
  })
  async work(job: Job<{ items: number[] }>, @CheckpointCtx() ctx?: CheckpointContext) {
    const context = ctx as CheckpointContext;
    for await (const batch of context.batches(job.data.items)) {
      if (upstream.down && (batch.items[0] ?? 0) >= 10) throw new Error('upstream unavailable');
      await batch.manager.query(
        `INSERT INTO "${schema}".imported (job, item) SELECT $1, unnest($2::int[])`,
        [job.id, batch.items],
      );
    }
  }
}

let http: HttpTestApp;
let browser: Browser;
/** The key of the import job that failed for good (at item 10 of 30). */
let failedKey: string;
let failedJob: string;
let base: string;
const contexts: BrowserContext[] = [];

before(async () => {
  await sql(`CREATE SCHEMA "${schema}"`);
  await sql(`CREATE TABLE "${schema}".effect (item int NOT NULL)`);
  await sql(`CREATE TABLE "${schema}".imported (job uuid NOT NULL, item int NOT NULL)`);
  http = await createHttpApp({
    schema,
    guard: SessionGuard,
    controlGuard: OperatorGuard,
    providers: [ScreeningChunks, Imports],
    checkpoint: {
      boss: {
        connectionString: DATABASE_URL,
        schema: `${schema}_boss`,
        max: 3,
        supervise: false,
      },
    },
  });
  base = `${http.url}/ops/checkpoints`;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--no-sandbox'],
  });
  // A run of 3 chunks; two items of the second chunk are refused and go to the ledger.
  const runs = http.app.get(CheckpointRuns);
  await runs.start(QUEUE, { id: RUN, items: range(ITEMS), chunkSize: 20 });
  await waitUntil(async () => (await runs.get(RUN))?.state === 'completed', 60_000, 'the run');
  // An import job that fails for good (no retry left) after 10 of its 30 items.
  const boss = http.app.get<PgBoss>(CHECKPOINT_BOSS);
  const id = await boss.send(IMPORTS, { items: range(30) });
  assert.ok(id);
  failedJob = id;
  failedKey = `${IMPORTS}:${id}`;
  await waitUntil(
    async () => (await boss.getJobById(IMPORTS, id))?.state === 'failed',
    30_000,
    'the import job to fail',
  );
  const [failed] = await sql<{ state: string; current_index: string }>(
    `SELECT state, current_index FROM "${schema}".checkpoint WHERE key = $1`,
    [failedKey],
  );
  assert.deepEqual(failed, { state: 'failed', current_index: '10' });
});

after(async () => {
  for (const context of contexts) await context.close();
  await browser?.close();
  await http?.app.close();
  await dropSchema(schema);
  await dropSchema(`${schema}_boss`);
  if (!UPDATE_SCREENSHOT) await rm(SCREENSHOT, { force: true });
});

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** A browser context, signed in as `session` (or not at all), and the API answers it received. */
async function open(session?: string) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  // Playwright's 30 s default is too short on a loaded machine; these are failure detectors.
  context.setDefaultTimeout(60_000);
  contexts.push(context);
  if (session !== undefined) {
    await context.addCookies([{ name: SESSION_COOKIE, value: session, url: http.url }]);
  }
  const page = await context.newPage();
  const answers: Array<{ url: string; status: number }> = [];
  page.on('response', (response: Response) => {
    if (response.url().includes('/api/'))
      answers.push({ url: response.url(), status: response.status() });
  });
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(base);
  return { page, answers, errors };
}

async function chunkOf(item: number): Promise<{ key: string; job_id: string }> {
  const [chunk] = await sql<{ key: string; job_id: string }>(
    `SELECT key, job_id FROM "${schema}".checkpoint WHERE run_id = $1 AND run_chunk = $2`,
    [RUN, Math.floor(item / 20)],
  );
  assert.ok(chunk, `chunk of item ${item}`);
  return chunk;
}

describe('the dashboard as a console, in Chromium', () => {
  it('without a session: only the sign-in state, and no data request succeeds', async () => {
    const { page, answers, errors } = await open();
    await page.locator('#denied').waitFor({ state: 'visible', timeout: 60_000 });
    assert.equal(await page.locator('#main').isHidden(), true);
    const shown = (await page.locator('body').innerText()).toLowerCase();
    assert.ok(shown.includes('sign in'), shown);
    assert.ok(!shown.includes(RUN) && !shown.includes(QUEUE), 'no run or key shown');
    assert.ok(answers.length > 0, 'the page asked the API');
    const succeeded = answers.filter((answer) => answer.status < 400);
    assert.deepEqual(succeeded, [], 'no data request succeeded');
    assert.deepEqual(errors, []);
  });

  it('a reader sees runs, keys, a run detail and the ledger, and no control at all', async () => {
    const { page, errors } = await open(READER);
    const runRow = page.locator(`#runs tr[data-run="${RUN}"]`);
    await runRow.waitFor({ timeout: 60_000 });
    assert.equal(await runRow.getAttribute('data-state'), 'completed');
    await page.locator('#keys tbody tr').first().waitFor();
    assert.equal(await page.locator('#keys tbody tr').count(), 4, 'three chunks and the import');
    // Tabs per state, with their counts.
    await page
      .locator('#tabs button[data-state="completed"] .count')
      .filter({ hasText: '3' })
      .waitFor();
    await runRow.click();
    await page.locator(`#run-ledger tr[data-item="${BAD_IN_CHUNK}"]`).waitFor({ timeout: 60_000 });
    // The chunks and the ledger are two answers: the ledger's may be drawn first.
    await page.locator('#chunks tbody tr').nth(2).waitFor();
    assert.equal(await page.locator('#chunks tbody tr').count(), 3);
    const controls = await page
      .locator(
        'button.action-pause, button.item-redrive, input.pick-item, #run-redrive, #key-retry, #key-redrive, #redrive-selected, #run-redrive-selected',
      )
      .count();
    assert.equal(controls, 0, "no control in a reader's page");
    // A failed key: its detail shows it failed, and offers no Retry.
    await page.locator(`#keys tr[data-key="${failedKey}"] td.key`).click();
    await page.locator(`#detail[data-key="${failedKey}"]`).waitFor({ timeout: 60_000 });
    await page.locator('#detail-error').filter({ hasText: 'upstream unavailable' }).waitFor();
    assert.ok((await page.locator('#detail-fields').innerText()).includes('failed'));
    assert.equal(await page.locator('#key-retry').count(), 0, 'no Retry for a reader');
    assert.deepEqual(errors, []);
  });

  it('search finds a key by its pg-boss job id', async () => {
    const { page, errors } = await open(READER);
    await page.locator('#keys tbody tr').first().waitFor({ timeout: 60_000 });
    const chunk = await chunkOf(45);
    await page.locator('#search-input').fill(chunk.job_id);
    await page.locator('#search button[type="submit"]').click();
    await page.locator('#keys tbody tr').first().waitFor();
    await waitUntil(
      async () => (await page.locator('#keys tbody tr').count()) === 1,
      60_000,
      'one row',
    );
    assert.equal(await page.locator('#keys tbody tr').getAttribute('data-key'), chunk.key);
    // One match opens its detail, which names the job.
    await page.locator(`#detail[data-key="${chunk.key}"]`).waitFor({ timeout: 60_000 });
    assert.ok((await page.locator('#detail-fields').innerText()).includes(chunk.job_id));
    assert.deepEqual(errors, []);
  });

  it('an operator retries a failed key: its job runs again from item 10 and completes, each item once', async () => {
    const { page, errors } = await open(OPERATOR);
    const keyRow = page.locator(`#keys tr[data-key="${failedKey}"]`);
    await keyRow.locator('td.key').click({ timeout: 60_000 });
    await page.locator(`#detail[data-key="${failedKey}"]`).waitFor({ timeout: 60_000 });
    const retry = page.locator('#key-retry');
    await page.locator('#key-retry:enabled').waitFor({ timeout: 60_000 });
    assert.equal(await keyRow.getAttribute('data-state'), 'failed');

    upstream.down = false;
    await retry.click();
    await page.locator('#notice').filter({ hasText: 'Retry sent' }).waitFor();
    // The page hears the key run again and complete, without a reload.
    await page
      .locator(`#keys tr[data-key="${failedKey}"][data-state="completed"]`)
      .waitFor({ timeout: 60_000 });
    const [key] = await sql<{ state: string; current_index: string; attempt: number }>(
      `SELECT state, current_index, attempt FROM "${schema}".checkpoint WHERE key = $1`,
      [failedKey],
    );
    assert.deepEqual(key, { state: 'completed', current_index: '30', attempt: 2 });
    const imported = await sql<{ item: number; n: number }>(
      `SELECT item, count(*)::int AS n FROM "${schema}".imported WHERE job = $1 GROUP BY item ORDER BY item`,
      [failedJob],
    );
    assert.deepEqual(
      imported,
      range(30).map((item) => ({ item, n: 1 })),
    );
    const job = await http.app.get<PgBoss>(CHECKPOINT_BOSS).getJobById(IMPORTS, failedJob);
    assert.equal(job?.state, 'completed');
    // Nothing left to retry: the button is off.
    await page.locator('#key-retry:disabled').waitFor({ timeout: 60_000 });
    assert.deepEqual(errors, []);
  });

  it('an operator redrives chosen ledger items from the run detail: each effect once, its ledger row gone, the others kept', async () => {
    const { page, errors } = await open(OPERATOR);
    await page.locator(`#runs tr[data-run="${RUN}"]`).click({ timeout: 60_000 });
    const ledgerRow = page.locator(`#run-ledger tr[data-item="${BAD_IN_CHUNK}"]`);
    await ledgerRow.waitFor({ timeout: 60_000 });
    const chunk = await chunkOf(BAD);
    assert.equal(await ledgerRow.getAttribute('data-key'), chunk.key);
    assert.ok((await ledgerRow.locator('td.ledger-error').innerText()).includes('refused'));
    assert.equal(await ledgerRow.locator('td.value').innerText(), String(BAD));
    // The throughput chart: 60 slices of the run's life, drawn, with a busiest slice above 0.
    const chart = page.locator('#run-chart svg');
    await chart.waitFor();
    assert.equal(await chart.getAttribute('data-points'), '60');
    assert.ok(Number(await chart.getAttribute('data-max')) > 0);
    assert.equal(await page.locator('#run-chart svg path.line').count(), 1);
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    const [before] = await sql<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${schema}".effect WHERE item = $1`,
      [BAD],
    );
    assert.equal(before?.n, 0);

    const effects = () =>
      sql<{ item: number; n: number }>(
        `SELECT item, count(*)::int AS n FROM "${schema}".effect GROUP BY item ORDER BY item`,
      );
    const ledger = async () =>
      (
        await sql<{ item_index: string }>(
          `SELECT item_index FROM "${schema}".failed_item ORDER BY item_index`,
        )
      ).map((row) => Number(row.item_index));
    const completedAgain = () =>
      waitUntil(
        async () => (await http.app.get(CheckpointRuns).get(RUN))?.state === 'completed',
        60_000,
        'the run completed again',
      );
    assert.deepEqual(await ledger(), [BAD_IN_CHUNK, OTHER_IN_CHUNK]);

    // The model answers item 27 now; the operator redrives that one item of the chunk's two. The
    // redrive alone finishes it: it sends the chunk's job again, the application's own worker runs
    // the item, and nobody calls the handler or sends a job by hand.
    refused.delete(BAD);
    await ledgerRow.locator('button.item-redrive').click();
    await page
      .locator('#notice')
      .filter({ hasText: 'Redrive asked for 1 item(s): 1 job(s) sent again' })
      .waitFor();
    // The page hears the change: the ledger row goes; the item's effect is there once, and the
    // item not chosen stays in the ledger, not run.
    await ledgerRow.waitFor({ state: 'detached', timeout: 60_000 });
    await completedAgain();
    const otherRow = page.locator(`#run-ledger tr[data-item="${OTHER_IN_CHUNK}"]`);
    await otherRow.waitFor();
    assert.deepEqual(await ledger(), [OTHER_IN_CHUNK]);
    assert.deepEqual(
      await effects(),
      range(ITEMS)
        .filter((item) => item !== OTHER)
        .map((item) => ({ item, n: 1 })),
    );

    // Then the other one, chosen with its box and "Redrive selected".
    refused.clear();
    await otherRow.locator('input.pick-item').check();
    await page.locator('#run-redrive-selected:enabled').click();
    await page
      .locator('#notice')
      .filter({ hasText: 'Redrive asked for 1 item(s): 1 job(s) sent again' })
      .waitFor();
    await otherRow.waitFor({ state: 'detached', timeout: 60_000 });
    await page.locator('#run-ledger-empty').waitFor({ state: 'visible' });
    await completedAgain();
    assert.deepEqual(
      await effects(),
      range(ITEMS).map((item) => ({ item, n: 1 })),
    );
    assert.deepEqual(await ledger(), []);
    assert.deepEqual(errors, []);
  });
});
