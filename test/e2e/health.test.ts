// The Terminus health indicator against real worker processes: SIGSTOP the owner in the middle
// of a batch and it goes down within stall time + 2 s; SIGCONT, or a takeover by another worker
// after the owner is killed, brings it up again. And in a process whose database traffic is cut
// (a TCP proxy that stops forwarding), it goes down with the lost session and up after the heal.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import type { INestApplicationContext } from '@nestjs/common';
import { PgBoss } from 'pg-boss';
import { CheckpointService } from '../../src/index.js';
import { CheckpointHealthIndicator, CheckpointHealthModule } from '../../src/health/index.js';
import { createJobEffectTable, QUEUE } from '../fixtures/queue-job.js';
import { createTestApp } from '../support/app.js';
import { DATABASE_URL, dropSchema, sql, uniqueSchema } from '../support/database.js';
import { TcpProxy } from '../support/proxy.js';
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

interface Report {
  status: string;
  stalled?: Array<{ key: string }>;
  session?: string;
  reason?: string;
  database?: string;
}

async function status(of = indicator): Promise<Report> {
  const result = await of.isHealthy('checkpoint');
  return result.checkpoint as Report;
}

/** Milliseconds until the indicator says `wanted` (polled every 100 ms). */
async function until(wanted: 'up' | 'down', timeoutMs: number, of = indicator): Promise<number> {
  const started = Date.now();
  for (;;) {
    const report = await status(of);
    if (report.status === wanted) return Date.now() - started;
    if (Date.now() - started > timeoutMs) {
      throw new Error(`not ${wanted} within ${timeoutMs} ms: ${JSON.stringify(report)}`);
    }
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
    // Bounded as a hang detector only: how soon after the stall time it turns is load-bound.
    const down = await until('down', 60_000);
    t.diagnostic(`SIGSTOP -> down after ${down} ms (stall time ${STALL_MS} ms)`);
    const report = await status();
    assert.deepEqual(
      report.stalled?.map((each) => each.key),
      [key],
    );

    owner.process.kill('SIGCONT');
    const up = await until('up', 60_000);
    t.diagnostic(`SIGCONT -> up after ${up} ms`);

    // Stopped again, then killed: the other worker takes the job over and the indicator recovers.
    const before = await progress(key);
    owner.process.kill('SIGSTOP');
    await until('down', 60_000);
    await owner.kill('SIGKILL');
    const recovered = await until('up', 30_000);
    t.diagnostic(`SIGKILL of the stopped owner -> up after ${recovered} ms (takeover)`);
    await other.waitFor((line) => line.startsWith(`start ${id} `), 60_000);
    const deadline = Date.now() + 60_000;
    while ((await progress(key)) <= before && Date.now() < deadline) await sleep(100);
    assert.ok((await progress(key)) > before, 'the new attempt advances');
    assert.equal((await status()).status, 'up', 'and the indicator stays up while it does');
  });

  it('goes down while the process has lost its checkpoint session, and up when it is back', async (t: TestContext) => {
    const ttl = 1500;
    const target = new URL(DATABASE_URL);
    const proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
    await proxy.start();
    // A failed assertion must not leave the partitioned sockets holding the test process open.
    t.after(() => proxy.close());
    const timeoutMs = 1000;
    const cutOff = await createTestApp({
      schema,
      url: proxy.urlFor(DATABASE_URL),
      poolSize: 4,
      // The lease held below must not count as stalled work.
      imports: [CheckpointHealthModule.forRoot({ stallMs: 60_000, timeoutMs })],
      checkpoint: { leaseTtlMs: ttl },
    });
    const cutIndicator = cutOff.get(CheckpointHealthIndicator);
    // A lease to renew: its renewal is what finds the session cut.
    const service = cutOff.get(CheckpointService);
    const claim = await service.claim('health:session');
    assert.equal((await status(cutIndicator)).status, 'up');
    proxy.partition();
    const cutAt = Date.now();
    // Every check answers within its timeout, though no statement gets an answer.
    const reports: Array<{ report: Report; ms: number }> = [];
    while (reports.at(-1)?.report.session !== 'lost') {
      assert.ok(Date.now() - cutAt < 10 * ttl, JSON.stringify(reports));
      const started = Date.now();
      const report = await status(cutIndicator);
      reports.push({ report, ms: Date.now() - started });
      assert.equal(report.status, 'down', JSON.stringify(report));
    }
    const lostAfter = Date.now() - cutAt;
    const slowest = Math.max(...reports.map((each) => each.ms));
    proxy.heal();
    const up = await until('up', 5 * ttl, cutIndicator);
    const first = reports[0]?.report;
    t.diagnostic(
      `traffic cut: down at once ("${first?.database ?? first?.reason}"), session lost after ${lostAfter} ms ` +
        `(lease TTL ${ttl} ms; "${reports.at(-1)?.report.reason}"), slowest check ${slowest} ms; healed -> up after ${up} ms`,
    );
    assert.ok(slowest <= timeoutMs + 500, `a check took ${slowest} ms`);
    await service.release('health:session', claim.epoch);
    await cutOff.close();
  });
});
