// Retention: completed and cancelled keys and runs older than N days are purged on a pg-boss
// schedule; two processes register it, one purges; everything else stays.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { INestApplicationContext } from '@nestjs/common';
import pg from 'pg';
import { PgBoss } from 'pg-boss';
import { CheckpointConfigError, CheckpointRetention, CheckpointService } from '../../src/index.js';
import { checkpointSql } from '../../src/checkpoint.sql.js';
import { retentionSql } from '../../src/retention/retention.sql.js';
import { createTestApp } from '../support/app.js';
import { DATABASE_URL, dropSchema, sql, uniqueSchema } from '../support/database.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const schema = uniqueSchema('retain');
const apps: INestApplicationContext[] = [];

const bossOptions = () => ({
  connectionString: DATABASE_URL,
  schema: `${schema}_boss`,
  max: 2,
  superviseIntervalSeconds: 1,
});

before(async () => {
  for (let i = 0; i < 2; i++) {
    apps.push(
      await createTestApp({
        schema,
        checkpoint: { boss: bossOptions(), retention: { days: 7, cron: '*/30 * * * *' } },
      }),
    );
  }
});

after(async () => {
  for (const app of apps) await app.close();
  await dropSchema(schema);
  await dropSchema(`${schema}_boss`);
});

async function seedKey(key: string, state: string, ageDays: number, runId?: string) {
  const service = apps[0].get(CheckpointService);
  const claim = await service.claim(key);
  await service.advance(key, claim.epoch, { currentIndex: 10 });
  if (state === 'completed') await service.complete(key, claim.epoch, { ok: true });
  else if (state === 'failed') await service.fail(key, claim.epoch, new Error('x'));
  else if (state === 'cancelled') {
    await service.release(key, claim.epoch);
    await service.cancel(key);
  } else if (state === 'released') await service.release(key, claim.epoch);
  await sql(
    `UPDATE "${schema}".checkpoint SET updated_at = now() - make_interval(days => $2),
       created_at = now() - make_interval(days => $2), run_id = $3
       WHERE key = $1`,
    [key, ageDays, runId ?? null],
  );
}

async function seedRun(id: string, state: string, ageDays: number) {
  await sql(
    `INSERT INTO "${schema}".run (id, queue, state, mode, total_items, chunk_count, chunk_size, updated_at)
     VALUES ($1, 'q', $2, 'queued', 10, 1, 10, now() - make_interval(days => $3))`,
    [id, state, ageDays],
  );
}

describe('retention', () => {
  it('purges old completed and cancelled work once per scheduled job, in one process', async () => {
    await seedRun('run-old-done', 'completed', 9);
    await seedRun('run-old-busy', 'running', 9);
    await seedKey('old-completed', 'completed', 8);
    await seedKey('old-cancelled', 'cancelled', 8);
    await seedKey('old-failed', 'failed', 8);
    await seedKey('old-released', 'released', 8);
    await seedKey('new-completed', 'completed', 1);
    await seedKey('chunk-of-done-run', 'completed', 9, 'run-old-done');
    await seedKey('chunk-of-busy-run', 'completed', 9, 'run-old-busy');

    const calls: number[] = [];
    apps.forEach((app, index) => {
      const retention = app.get(CheckpointRetention);
      const purge = retention.purge.bind(retention);
      retention.purge = async (days: number) => {
        calls.push(index);
        return purge(days);
      };
    });

    // Both processes registered the schedule; its next tick is a job like this one.
    const boss = new PgBoss({ ...bossOptions(), supervise: false });
    boss.on('error', () => undefined);
    await boss.start();
    try {
      const queue = apps[0].get(CheckpointRetention).queue;
      const schedules = await boss.getSchedules(queue);
      assert.equal(schedules.length, 1);
      assert.equal(schedules[0]?.cron, '*/30 * * * *');
      const id = await boss.send(queue, { days: 7 });
      assert.ok(id);
      // The job's end, not a pause, bounds the wait: once it completed, no process can take it.
      const deadline = Date.now() + 120_000;
      while ((await boss.getJobById(queue, id))?.state !== 'completed' && Date.now() < deadline) {
        await sleep(100);
      }
    } finally {
      await boss.stop({ graceful: false });
    }
    assert.equal(calls.length, 1, `one process purged (${calls.join(', ')})`);

    const keys = (
      await sql<{ key: string }>(`SELECT key FROM "${schema}".checkpoint ORDER BY key`)
    ).map((row) => row.key);
    assert.deepEqual(keys, ['chunk-of-busy-run', 'new-completed', 'old-failed', 'old-released']);
    const runs = (await sql<{ id: string }>(`SELECT id FROM "${schema}".run ORDER BY id`)).map(
      (row) => row.id,
    );
    assert.deepEqual(runs, ['run-old-busy']);
  });

  it('refuses a retention option it cannot honour, naming it', async () => {
    await assert.rejects(
      createTestApp({ schema, checkpoint: { retention: { days: 7 } } }),
      (error: unknown) =>
        error instanceof CheckpointConfigError && /boss option/.test(error.message),
    );
    await assert.rejects(
      createTestApp({ schema, checkpoint: { boss: bossOptions(), retention: { days: 0 } } }),
      (error: unknown) =>
        error instanceof CheckpointConfigError && /retention\.days/.test(error.message),
    );
  });

  it('commits each purge statement without waiting for the WAL flush, while it holds its rows', async () => {
    await seedKey('async/old', 'completed', 30);
    await seedRun('async-run-old', 'completed', 30);
    const before = new Date(Date.now() - 7 * 86_400_000);
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    try {
      for (const query of [
        retentionSql(schema).purgeRuns(before, 10),
        checkpointSql(schema).purgeSlice('completed', before, null, 10),
      ]) {
        // In a transaction rolled back, to read the setting its commit would have used.
        await client.query('BEGIN');
        const { rowCount } = await client.query(query.text, query.values);
        assert.ok((rowCount ?? 0) > 0, 'the statement removed something');
        const { rows } = await client.query<{ synchronous_commit: string }>(
          'SHOW synchronous_commit',
        );
        assert.equal(rows[0].synchronous_commit, 'off');
        await client.query('ROLLBACK');
      }
    } finally {
      await client.end();
    }
  });
});
