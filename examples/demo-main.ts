// The demo itself, loaded by demo.ts once its flags are checked.
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { getDataSourceToken } from '@nestjs/typeorm';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { PgBoss } from 'pg-boss';
import { combineLatest, startWith } from 'rxjs';
import { IsNull, type DataSource } from 'typeorm';
import { CheckpointService, type CheckpointProgress } from '../src/index.js';
import { DemoModule } from './app.module.js';
import type { DemoFlags } from './demo-flags.js';
import { lockDemo } from './demo-lock.js';
import { DemoLogger } from './demo-logger.js';
import { openDatabase, type DemoDatabase } from './database.js';
import { ProgressView, formatNumber, formatSeconds, sumProgress } from './progress-view.js';
import { Decision, DemoRun } from './screening.entities.js';
import { SCREENING_QUEUE, type ScreeningChunk } from './screening.service.js';

const BATCH_SIZE = 50;

let flags: DemoFlags;
let schema: string;

/** Runs the demo (or, with `--worker`, one extra worker process) with checked flags. */
export async function main(checked: DemoFlags): Promise<void> {
  flags = checked;
  schema = flags.schema;
  const database = await openDatabase();
  if (flags.worker) await runWorker(database);
  else await runDemo(database);
}

/** An extra worker process: works the queue until SIGTERM, or dies with its parent. */
async function runWorker(database: DemoDatabase): Promise<void> {
  const app = await NestFactory.createApplicationContext(
    DemoModule.register({ url: database.url, schema, synchronize: false }),
    { logger: ['error'] },
  );
  app.enableShutdownHooks();
  const parent = process.ppid;
  // A crash of the demo takes its workers with it, as a crash of a machine would.
  setInterval(() => {
    if (process.ppid !== parent) process.kill(process.pid, 'SIGKILL');
  }, 200).unref();
}

async function runDemo(database: DemoDatabase): Promise<void> {
  const { items, workers: workerCount, itemMs, crashAt } = flags;
  const chunkCount = Math.min(flags.chunks, items);
  const view = new ProgressView();

  // One demo per schema: a second one would join this run and ignore its own flags.
  const locked = await lockDemo(database.url, schema);
  if ('heldBy' in locked) {
    process.stderr.write(
      `demo: another demo is running on schema "${schema}" of this database (${locked.heldBy}). ` +
        'Wait for it to finish or stop it with Ctrl-C, or give this one another --schema.\n',
    );
    process.exit(1);
  }
  const { lock } = locked;
  // The embedded server is shared by every demo on it: only the last one to finish stops it.
  const stopDatabase = async () => {
    const others = await lock.others();
    await lock.release();
    if (others === 0) await database.stop();
  };

  view.say(
    database.embedded
      ? `Database: embedded PostgreSQL, data in .demo-data/ (ready in ${Math.round(database.startupMs ?? 0)} ms)`
      : `Database: ${database.url.replace(/\/\/[^@]*@/, '//')}`,
  );
  // TypeORM's synchronize creates the demo's tables but not their schema.
  const admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  await admin.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
  await admin.end();
  // Before the app starts its workers, which would otherwise pick the old run's jobs up first.
  if (flags.fresh) {
    for (const old of await cancelUnfinished(database.url)) {
      view.say(
        `Cancelled unfinished run ${old.id.slice(0, 8)} (--fresh): its ${old.jobs} jobs are off the queue and their checkpoints removed.`,
      );
    }
  }
  const app = await NestFactory.createApplicationContext(
    DemoModule.register({ url: database.url, schema, synchronize: true }),
    { logger: new DemoLogger(view) },
  );
  const dataSource = app.get<DataSource>(getDataSourceToken());
  const service = app.get(CheckpointService);
  const boss = app.get(PgBoss);
  const runs = dataSource.getRepository(DemoRun);
  const keyOf = (jobId: string) => `${SCREENING_QUEUE}:${jobId}`;
  // The database's clock, as checkpoint rows are stamped by it: older rows are a past attempt's.
  const [{ now: since }] = await dataSource.query<Array<{ now: Date }>>(
    'SELECT clock_timestamp() AS now',
  );

  let run: DemoRun | null = flags.fresh
    ? null
    : await runs.findOne({ where: { finishedAt: IsNull() }, order: { createdAt: 'DESC' } });
  let initial: Array<CheckpointProgress | null> = [];
  let attempt = 1;
  if (run !== null) {
    initial = await Promise.all(run.jobIds.map((id) => service.getProgress(keyOf(id))));
    const summed = sumProgress(initial, run.items, BATCH_SIZE);
    attempt = summed.attempt + 1;
    view.say(
      `Resuming run ${run.id.slice(0, 8)} at item ${formatNumber.format(summed.processed)} of ${formatNumber.format(run.items)}` +
        ` (${formatNumber.format(summed.processed)} already screened and committed; attempt ${attempt} goes on from there).`,
    );
    if (run.items !== items && process.argv.some((arg) => arg.startsWith('--items'))) {
      view.say(
        `(--items ${formatNumber.format(items)} applies to new runs; this one has ${formatNumber.format(run.items)}. Add --fresh to start over.)`,
      );
    }
  } else {
    const jobIds = Array.from({ length: chunkCount }, () => randomUUID());
    run = await runs.save({ id: randomUUID(), items, jobIds, finishedAt: null });
    const size = Math.ceil(items / chunkCount);
    for (const [i, id] of jobIds.entries()) {
      const chunk: ScreeningChunk = {
        runId: run.id,
        from: i * size,
        to: Math.min(items, (i + 1) * size),
        itemMs,
      };
      await boss.send(SCREENING_QUEUE, chunk, { id });
    }
    view.say(
      `Starting run ${run.id.slice(0, 8)}: ${formatNumber.format(items)} items in ${chunkCount} pg-boss jobs, ` +
        `batches of ${BATCH_SIZE}, each batch's decisions committed with its checkpoint.`,
    );
  }
  const current = run;
  const keys = current.jobIds.map(keyOf);
  const now = { attempt, since };

  const workers: ChildProcess[] = [];
  for (let i = 1; i < workerCount; i++) {
    const worker = spawn(
      process.execPath,
      [process.argv[1] ?? '', '--worker', '--schema', schema],
      {
        env: { ...process.env, DATABASE_URL: database.url },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    // A worker's errors go through the view too, never into the bar's line.
    createInterface({ input: worker.stderr }).on('line', (line) =>
      view.say(`worker ${i + 1}: ${line}`),
    );
    workers.push(worker);
  }
  if (workers.length > 0) view.say(`${workers.length + 1} worker processes share the queue.`);
  view.say('Press Ctrl-C to stop gracefully; run `npm run demo` again to resume.');

  const started = Date.now();
  let stopping = false;
  const subscription = combineLatest(
    keys.map((key, i) => service.watch(key).pipe(startWith(initial[i] ?? null))),
  ).subscribe({
    next: (chunks) => {
      if (stopping) return;
      const progress = sumProgress(chunks, current.items, BATCH_SIZE, now);
      view.update(progress);
      if (crashAt !== undefined && (progress.processed / progress.total) * 100 >= crashAt) {
        view.say(
          `Simulating a hard crash at ${Math.floor((progress.processed / progress.total) * 100)}%: SIGKILL.`,
        );
        for (const worker of workers) worker.kill('SIGKILL');
        process.kill(process.pid, 'SIGKILL');
      }
    },
    error: (error: Error) => view.say(`progress stream failed: ${error.message}`),
    complete: () => void finish(),
  });

  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());

  async function stop(): Promise<void> {
    stopping = true;
    subscription.unsubscribe();
    view.done();
    view.say(
      'Stopping: in-flight batches finish, their checkpoints are committed, the jobs go back to the queue…',
    );
    for (const worker of workers) worker.kill('SIGTERM');
    await app.close();
    await Promise.all(
      workers.map((worker) => new Promise((resolve) => worker.once('exit', resolve))),
    );
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    const { rows } = await client.query<{ done: string }>(
      `SELECT coalesce(sum(current_index), 0) AS done FROM "${schema}".checkpoint WHERE key = ANY($1)`,
      [keys],
    );
    await client.end();
    view.say(
      `Stopped. The checkpoint stands at item ${formatNumber.format(Number(rows[0]?.done ?? 0))} of ${formatNumber.format(current.items)}.` +
        ' Run `npm run demo` again to resume from there.',
    );
    await stopDatabase();
    process.exit(0);
  }

  async function finish(): Promise<void> {
    view.done();
    const seconds = (Date.now() - started) / 1000;
    const records = await Promise.all(keys.map((key) => service.find(key)));
    const attempts = Math.max(...records.map((record) => record?.attempt ?? 1));
    const check = await dataSource
      .getRepository(Decision)
      .createQueryBuilder('d')
      .select('count(*)::int', 'rows')
      .addSelect('count(DISTINCT d.item)::int', 'distinct')
      .where('d.runId = :runId', { runId: current.id })
      .getRawOne<{ rows: number; distinct: number }>();
    const rows = check?.rows ?? 0;
    const distinct = check?.distinct ?? 0;
    await runs.update({ id: current.id }, { finishedAt: new Date() });
    view.say(
      `Completed run ${current.id.slice(0, 8)}: ${formatNumber.format(current.items)} items in ${formatSeconds(seconds)} this time, over ${attempts} attempt(s).`,
    );
    view.say(
      `Checked in the database: ${formatNumber.format(rows)} decision rows for ${formatNumber.format(distinct)} items: ` +
        `${rows - distinct} duplicates, ${current.items - distinct} missing.` +
        (rows === distinct && distinct === current.items
          ? ' Every item was screened exactly once.'
          : ''),
    );
    for (const worker of workers) worker.kill('SIGTERM');
    await app.close();
    await stopDatabase();
    process.exit(rows === distinct && distinct === current.items ? 0 : 1);
  }
}

/**
 * `--fresh`: cancels every unfinished run of the schema, before this process's workers start:
 * its jobs leave the queue (pg-boss `cancel`), its checkpoints are deleted, the run is closed.
 */
async function cancelUnfinished(url: string): Promise<Array<{ id: string; jobs: number }>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const table = await client.query<{ present: boolean }>(
      `SELECT to_regclass($1) IS NOT NULL AS present`,
      [`"${schema}".demo_run`],
    );
    if (table.rows[0]?.present !== true) return [];
    const { rows } = await client.query<{ id: string; job_ids: string[] }>(
      `SELECT id, "jobIds" AS job_ids FROM "${schema}".demo_run WHERE "finishedAt" IS NULL`,
    );
    if (rows.length === 0) return [];
    const boss = new PgBoss({
      connectionString: url,
      schema: `${schema}_boss`,
      supervise: false,
      schedule: false,
      max: 1,
    });
    await boss.start();
    try {
      for (const row of rows) {
        await boss.cancel(SCREENING_QUEUE, row.job_ids);
        await client.query(`DELETE FROM "${schema}".checkpoint WHERE key = ANY($1)`, [
          row.job_ids.map((id) => `${SCREENING_QUEUE}:${id}`),
        ]);
        await client.query(`UPDATE "${schema}".demo_run SET "finishedAt" = now() WHERE id = $1`, [
          row.id,
        ]);
      }
    } finally {
      await boss.stop({ graceful: false });
    }
    return rows.map((row) => ({ id: row.id, jobs: row.job_ids.length }));
  } finally {
    await client.end();
  }
}
