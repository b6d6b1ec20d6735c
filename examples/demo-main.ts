// The demo itself, loaded by demo.ts once its flags are checked.
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { getDataSourceToken } from '@nestjs/typeorm';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import pg from 'pg';
import type { DataSource } from 'typeorm';
import { CheckpointRuns, type Run } from '../src/index.js';
import { DemoModule } from './app.module.js';
import type { DemoFlags } from './demo-flags.js';
import { lockDemo } from './demo-lock.js';
import { DemoLogger } from './demo-logger.js';
import { openDatabase, type DemoDatabase } from './database.js';
import { ProgressView, formatNumber, formatSeconds, type RunProgress } from './progress-view.js';
import { Decision } from './screening.entities.js';
import { SCREENING_QUEUE, type ScreeningSettings } from './screening.service.js';

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
        `Cancelled unfinished run ${old.id.slice(0, 8)} (--fresh): its ${old.jobs} jobs are off the queue and its chunks cancelled.`,
      );
    }
  }
  const app = await NestFactory.createApplicationContext(
    DemoModule.register({ url: database.url, schema, synchronize: true }),
    { logger: new DemoLogger(view) },
  );
  const dataSource = app.get<DataSource>(getDataSourceToken());
  const runs = app.get(CheckpointRuns);
  const lastAttempt = async (id: string) =>
    Math.max(0, ...(await runs.chunks(id)).map((chunk) => chunk.attempt));

  // The newest unfinished run of the queue, unless --fresh: the library keeps the runs.
  let run: Run | undefined = flags.fresh
    ? undefined
    : (await runs.list({ queue: SCREENING_QUEUE, state: 'running', limit: 1 })).items[0];
  let attempt = 1;
  if (run !== undefined) {
    attempt = (await lastAttempt(run.id)) + 1;
    view.say(
      `Resuming run ${run.id.slice(0, 8)} at item ${formatNumber.format(run.processedItems)} of ${formatNumber.format(run.totalItems)}` +
        ` (${formatNumber.format(run.processedItems)} already screened and committed; attempt ${attempt} goes on from there).`,
    );
    if (run.totalItems !== items && process.argv.some((arg) => arg.startsWith('--items'))) {
      view.say(
        `(--items ${formatNumber.format(items)} applies to new runs; this one has ${formatNumber.format(run.totalItems)}. Add --fresh to start over.)`,
      );
    }
  } else {
    // One transaction: the run, a checkpoint row per chunk and every chunk's pg-boss job.
    run = await runs.start<number, ScreeningSettings>(SCREENING_QUEUE, {
      id: randomUUID(),
      items: Array.from({ length: items }, (_, i) => i),
      chunkSize: Math.ceil(items / chunkCount),
      // The demo shows workers sharing a queue: even a small input goes to it, not inline.
      directThreshold: 0,
      data: { itemMs },
    });
    view.say(
      `Starting run ${run.id.slice(0, 8)}: ${formatNumber.format(items)} items in ${run.chunkCount} pg-boss jobs, ` +
        `batches of ${BATCH_SIZE}, each batch's decisions committed with its checkpoint.`,
    );
  }
  const current = run;
  // This process's own rate: the run's average since it was created would count past attempts.
  const firstSeen = { at: Date.now(), items: current.processedItems };
  const toView = (value: Run): RunProgress => {
    const seconds = (Date.now() - firstSeen.at) / 1000;
    const done = value.processedItems - firstSeen.items;
    const itemsPerSecond = done > 0 && seconds > 0 ? done / seconds : null;
    return {
      processed: value.processedItems,
      total: value.totalItems,
      itemsPerSecond,
      etaSeconds:
        itemsPerSecond === null ? null : (value.totalItems - value.processedItems) / itemsPerSecond,
      chunksDone: value.chunks.completed,
      chunks: value.chunkCount,
      attempt,
    };
  };

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
  let last: Run = current;
  const subscription = runs.watch(current.id).subscribe({
    next: (value) => {
      last = value;
      if (stopping) return;
      const progress = toView(value);
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
      `SELECT coalesce(sum(current_index), 0) AS done FROM "${schema}".checkpoint WHERE run_id = $1`,
      [current.id],
    );
    await client.end();
    view.say(
      `Stopped. The checkpoint stands at item ${formatNumber.format(Number(rows[0]?.done ?? 0))} of ${formatNumber.format(current.totalItems)}.` +
        ' Run `npm run demo` again to resume from there.',
    );
    await stopDatabase();
    process.exit(0);
  }

  async function finish(): Promise<void> {
    view.done();
    const seconds = (Date.now() - started) / 1000;
    // The attempt this process announced, or a later one of a chunk retried meanwhile.
    const attempts = Math.max(attempt, await lastAttempt(current.id));
    const check = await dataSource
      .getRepository(Decision)
      .createQueryBuilder('d')
      .select('count(*)::int', 'rows')
      .addSelect('count(DISTINCT d.item)::int', 'distinct')
      .where('d.runId = :runId', { runId: current.id })
      .getRawOne<{ rows: number; distinct: number }>();
    const rows = check?.rows ?? 0;
    const distinct = check?.distinct ?? 0;
    view.say(
      `Completed run ${current.id.slice(0, 8)}: ${formatNumber.format(current.totalItems)} items in ${formatSeconds(seconds)} this time, over ${attempts} ${attempts === 1 ? 'attempt' : 'attempts'}.`,
    );
    view.say(
      `Checked in the database: ${formatNumber.format(rows)} decision rows for ${formatNumber.format(distinct)} items: ` +
        `${rows - distinct} duplicates, ${current.totalItems - distinct} missing.` +
        (rows === distinct && distinct === current.totalItems && last.state === 'completed'
          ? ' Every item was screened exactly once.'
          : ''),
    );
    for (const worker of workers) worker.kill('SIGTERM');
    await app.close();
    await stopDatabase();
    process.exit(rows === distinct && distinct === current.totalItems ? 0 : 1);
  }
}

/**
 * `--fresh`: cancels every unfinished run of the queue before this process's workers start (an
 * application without the worker does it): its chunk jobs leave the queue and its chunks are
 * cancelled, in one transaction; what they committed stays.
 */
async function cancelUnfinished(url: string): Promise<Array<{ id: string; jobs: number }>> {
  const app = await NestFactory.createApplicationContext(
    DemoModule.register({ url, schema, synchronize: false, works: false }),
    { logger: ['error'] },
  );
  try {
    const runs = app.get(CheckpointRuns);
    const cancelled = [];
    for (const run of (await runs.list({ queue: SCREENING_QUEUE, state: 'running' })).items) {
      const jobs = run.chunkCount - run.chunks.completed - run.chunks.cancelled;
      await runs.cancel(run.id);
      cancelled.push({ id: run.id, jobs });
    }
    return cancelled;
  } finally {
    await app.close();
  }
}
