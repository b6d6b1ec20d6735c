// The Terminus health indicator against real worker processes: SIGSTOP the owner in the middle
// of a batch and it goes down within stall time + 2 s; SIGCONT, or a takeover by another worker
// after the owner is killed, brings it up again.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import type { INestApplicationContext } from '@nestjs/common';
import { PgBoss } from 'pg-boss';
import { CheckpointHealthIndicator, CheckpointHealthModule } from '../../src/health/index.js';
import { createJobEffectTable, QUEUE } from '../fixtures/queue-job.js';
import { createTestApp } from '../support/app.js';
import { dropSchema, sql, uniqueSchema } from '../support/database.js';
import { startSender } from '../support/workers.js';
import { Child } from '../support/process.js';

const STALL_MS = 2000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const schema = uniqueSchema('health');
const workers: Child[] = [];
let app: INestApplicationContext;
let indicator: CheckpointHealthIndicator;
let boss: PgBoss;

before(async () => {
  await sql(`CREATE SCHEMA "${schema}"`);
  await sql(createJobEffectTable(schema));
  app = await createTestApp({
    schema,
    imports: [CheckpointHealthModule.forRoot({ stallMs: STALL_MS })],
  });
  indicator = app.get(CheckpointHealthIndicator);
  boss = await startSender(schema);
});

after(async () => {
  for (const worker of workers) {
    worker.process.kill('SIGCONT');
    await worker.kill('SIGKILL');
  }
  await boss.stop({ graceful: false });
  await app.close();
  await dropSchema(schema);
  await dropSchema(`${schema}_boss`);
});

async function status(): Promise<{ status: string; stalled?: Array<{ key: string }> }> {
  const result = await indicator.isHealthy('checkpoint');
  return result.checkpoint as { status: string; stalled?: Array<{ key: string }> };
}

/** Milliseconds until the indicator says `wanted` (polled every 100 ms). */
async function until(wanted: 'up' | 'down', timeoutMs: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    if ((await status()).status === wanted) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`not ${wanted} within ${timeoutMs} ms`);
    await sleep(100);
  }
}

async function progress(key: string): Promise<number> {
  const [row] = await sql<{ current_index: string }>(
    `SELECT current_index FROM "${schema}".checkpoint WHERE key = $1`,
    [key],
  );
  return Number(row?.current_index ?? 0);
}

describe('CheckpointHealthIndicator', () => {
  it('goes down when the owner stops mid-batch, and up after SIGCONT or a takeover', async (t: TestContext) => {
    for (let i = 0; i < 2; i++) {
      const worker = Child.start('queue-worker', { SCHEMA: schema, JOB_EVENTS: '1' });
      workers.push(worker);
      await worker.waitFor((line) => line.startsWith('ready'));
    }
    assert.equal((await status()).status, 'up', 'nothing runs yet');
    const id = await boss.send(QUEUE, { count: 6000, batchDelayMs: 100 });
    assert.ok(id);
    const key = `${QUEUE}:${id}`;
    const started = await Promise.race(
      workers.map((worker) =>
        worker.waitFor((line) => line.startsWith(`batch ${id} 200`)).then(() => worker),
      ),
    );
    const owner = started;
    const other = workers.find((worker) => worker !== owner) as Child;
    assert.equal((await status()).status, 'up', 'work moves');

    // SIGSTOP in the middle of a batch (each batch sleeps 100 ms after its line).
    await owner.waitFor((line) => line.startsWith(`batch ${id} 400`));
    owner.process.kill('SIGSTOP');
    const down = await until('down', STALL_MS + 5000);
    t.diagnostic(`SIGSTOP -> down after ${down} ms (stall time ${STALL_MS} ms)`);
    assert.ok(down <= STALL_MS + 2000, `down after ${down} ms`);
    const report = await status();
    assert.deepEqual(
      report.stalled?.map((each) => each.key),
      [key],
    );

    owner.process.kill('SIGCONT');
    const up = await until('up', 5000);
    t.diagnostic(`SIGCONT -> up after ${up} ms`);

    // Stopped again, then killed: the other worker takes the job over and the indicator recovers.
    const before = await progress(key);
    owner.process.kill('SIGSTOP');
    await until('down', STALL_MS + 5000);
    await owner.kill('SIGKILL');
    const recovered = await until('up', 30_000);
    t.diagnostic(`SIGKILL of the stopped owner -> up after ${recovered} ms (takeover)`);
    await other.waitFor((line) => line.startsWith(`start ${id} `), 10_000);
    await sleep(500);
    assert.ok((await progress(key)) > before, 'the new attempt advances');
    assert.equal((await status()).status, 'up', 'and the indicator stays up while it does');
  });
});
