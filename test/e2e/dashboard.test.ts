// The dashboard in a real headless Chromium (Debian's /usr/bin/chromium driven by playwright-core):
// a key worked by a worker process appears, its bar moves, Pause stops the worker a batch or two
// after the request and the bar stops, Resume finishes it; an error with <script> and <img onerror> is shown as text.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { PgBoss } from 'pg-boss';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CheckpointService, FailedItemsService } from '../../src/index.js';
import { createJobEffectTable, QUEUE } from '../fixtures/queue-job.js';
import { dropSchema, sql, uniqueSchema } from '../support/database.js';
import { startSender } from '../support/workers.js';
import {
  createHttpApp,
  OPERATOR,
  OperatorGuard,
  SESSION_COOKIE,
  SessionGuard,
  type HttpTestApp,
} from '../support/http.js';
import { Child } from '../support/process.js';
import { waitUntil } from '../support/wait.js';

const schema = uniqueSchema('dash');
const XSS = `model refused: <script>window.__xss = 'script'</script><img src=x onerror="window.__xss = 'img'; alert(1)">`;

let http: HttpTestApp;
let boss: PgBoss;
let browser: Browser;
let worker: Child | undefined;

before(async () => {
  await sql(`CREATE SCHEMA "${schema}"`);
  await sql(createJobEffectTable(schema));
  http = await createHttpApp({ schema, guard: SessionGuard, controlGuard: OperatorGuard });
  boss = await startSender(schema);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--no-sandbox'],
  });
});

after(async () => {
  await browser?.close();
  await worker?.kill('SIGKILL');
  await boss.stop({ graceful: false });
  await http.app.close();
  await dropSchema(schema);
  await dropSchema(`${schema}_boss`);
});

async function row(key: string) {
  const [found] = await sql<{ state: string; current_index: string }>(
    `SELECT state, current_index FROM "${schema}".checkpoint WHERE key = $1`,
    [key],
  );
  return found;
}

async function processedOnPage(page: Page, key: string): Promise<number> {
  const value = await page
    .locator(`tr[data-key="${key}"] .bar`)
    .getAttribute('data-processed', { timeout: 60_000 });
  return Number(value);
}

describe('dashboard in Chromium', () => {
  it('shows live progress, pauses and resumes a worker, and shows hostile text as text', async (t: TestContext) => {
    // A key whose last attempt failed with hostile text, as a model's answer might carry.
    const service = http.app.get(CheckpointService);
    const hostile = `${QUEUE}:hostile-answer`;
    const claim = await service.claim(hostile, { totalItems: 400 });
    await service.advance(hostile, claim.epoch, { currentIndex: 150, processedBatches: 3 });
    // An item isolated into the failed-item ledger, and then the attempt's own failure.
    await http.app
      .get(FailedItemsService)
      .skip(hostile, claim.epoch, 150, { abstract: '<b>bold?</b>' }, new Error(XSS), {
        currentIndex: 151,
        currentBatchIndex: null,
        processedBatches: null,
        cursor: undefined,
      });
    await service.fail(hostile, claim.epoch, new Error(XSS));

    worker = Child.start('queue-worker', { SCHEMA: schema, JOB_EVENTS: '1' });
    await worker.waitFor((line) => line.startsWith('ready'));
    const id = await boss.send(QUEUE, { count: 4000, batchDelayMs: 100 });
    assert.ok(id);
    const key = `${QUEUE}:${id}`;

    // A signed-in operator: the application's session cookie, which EventSource sends too.
    const context = await browser.newContext({ viewport: { width: 1280, height: 760 } });
    // Playwright's 30 s default is too short on a loaded machine; these are failure detectors.
    context.setDefaultTimeout(60_000);
    await context.addCookies([{ name: SESSION_COOKIE, value: OPERATOR, url: http.url }]);
    const page = await context.newPage();
    const dialogs: string[] = [];
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.goto(`${http.url}/ops/checkpoints`);
    await page.locator('#live.on').waitFor({ timeout: 60_000 });

    // The worker's key appears (live, without reloading), and its bar moves.
    await page.locator(`tr[data-key="${key}"]`).waitFor({ timeout: 60_000 });
    const first = await processedOnPage(page, key);
    await waitUntil(
      async () => (await processedOnPage(page, key)) > first + 200,
      60_000,
      'the bar to move',
    );
    const moving = await processedOnPage(page, key);
    t.diagnostic(`bar moved from ${first} to ${moving} items`);

    // Hostile text is shown as text: no script ran, no image element was made.
    const errorCell = page.locator(`tr[data-key="${hostile}"] td.error`);
    await errorCell.filter({ hasText: 'model refused' }).waitFor({ timeout: 60_000 });
    assert.equal(await errorCell.textContent(), `Error: ${XSS}`);
    await page.locator(`tr[data-key="${hostile}"] td.key`).click();
    // The detail panel fills in after its own request: wait for it, then compare exactly.
    const detailError = page.locator('#detail-error');
    await detailError.filter({ hasText: 'model refused' }).waitFor({ timeout: 60_000 });
    assert.equal(await detailError.textContent(), `Error: ${XSS}`);
    const ledgerRow = page.locator('#ledger tr[data-item="150"]');
    await ledgerRow.waitFor({ timeout: 60_000 });
    assert.equal(await ledgerRow.locator('td.ledger-error').textContent(), `Error: ${XSS}`);
    assert.equal(await ledgerRow.locator('td.value').textContent(), '{"abstract":"<b>bold?</b>"}');
    assert.equal(await page.locator('main b').count(), 0);
    assert.equal(await page.locator('main img').count(), 0);
    assert.equal(await page.evaluate(() => (globalThis as { __xss?: string }).__xss), undefined);
    assert.deepEqual(dialogs, []);

    await waitUntil(async () => (await processedOnPage(page, key)) > 1000, 30_000, 'progress');

    // Pause: the worker stops a batch or two after the request (NOTIFY), and so does the bar.
    const [answer] = await Promise.all([
      page.waitForResponse(
        (response) => response.request().method() === 'POST' && response.url().endsWith('/pause'),
        { timeout: 60_000 },
      ),
      page.locator(`tr[data-key="${key}"] button.action-pause`).click(),
    ]);
    assert.equal(answer.status(), 200);
    // Read after the pause committed: what commits from here is what the worker did before it
    // heard it (its lease renewal, every 10 s, would let some 100 batches of 100 ms through).
    const atRequest = Number((await row(key))?.current_index);
    await worker.waitFor((line) => line === `stopped ${id} CheckpointPausedError`);
    await waitUntil(
      async () => (await row(key))?.state === 'paused',
      60_000,
      'the worker to pause',
    );
    const stoppedAt = Number((await row(key))?.current_index);
    const batchesAfter = (stoppedAt - atRequest) / 50;
    t.diagnostic(`Pause clicked -> the worker stopped ${batchesAfter} batches after the request`);
    assert.ok(batchesAfter <= 3, `${batchesAfter} batches committed after the pause was asked`);
    // The attempt ended: the bar shows where it stopped, and stays there.
    await page.locator(`tr[data-key="${key}"][data-state="paused"]`).waitFor({ timeout: 60_000 });
    assert.equal(
      await processedOnPage(page, key),
      stoppedAt,
      'the bar stopped where the worker did',
    );

    // Resume: it continues to completed.
    await page.locator(`tr[data-key="${key}"] button.action-resume`).click();
    await page
      .locator(`tr[data-key="${key}"][data-state="completed"]`)
      .waitFor({ timeout: 90_000 });
    assert.equal(await processedOnPage(page, key), 4000);
    assert.equal(
      await page.locator(`tr[data-key="${key}"] .bar`).getAttribute('data-percent'),
      '100',
    );
    const [effects] = await sql<{ rows: number; distinct: number }>(
      `SELECT count(*)::int AS rows, count(DISTINCT item)::int AS distinct FROM "${schema}".job_effect WHERE job_id = $1`,
      [id],
    );
    assert.deepEqual(effects, { rows: 4000, distinct: 4000 });
    assert.deepEqual(pageErrors, []);
    assert.equal(await page.evaluate(() => (globalThis as { __xss?: string }).__xss), undefined);
    await context.close();
  });
});
