// `npm run demo`: screen N synthetic items with a checkpointed pg-boss worker, showing a live
// progress bar. Ctrl-C stops gracefully; run it again and it resumes. See `--help`.
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { getDataSourceToken } from '@nestjs/typeorm';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { PgBoss } from 'pg-boss';
import { combineLatest, startWith } from 'rxjs';
import { IsNull, type DataSource } from 'typeorm';
import { CheckpointService, type CheckpointProgress } from '../src/index.js';
import { DemoModule } from './app.module.js';
import { openDatabase } from './database.js';
import { ProgressView, formatNumber, formatSeconds, sumProgress } from './progress-view.js';
import { Decision, DemoRun } from './screening.entities.js';
import { SCREENING_QUEUE, type ScreeningChunk } from './screening.service.js';

const BATCH_SIZE = 50;
const { values: flags } = parseArgs({
  options: {
    items: { type: 'string', default: '20000' },
    chunks: { type: 'string', default: '4' },
    workers: { type: 'string', default: '1' },
    'item-ms': { type: 'string', default: '2' },
    'crash-at': { type: 'string' },
    schema: { type: 'string', default: 'demo' },
    fresh: { type: 'boolean', default: false },
    worker: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

if (flags.help) {
  console.log(`npm run demo -- [options]
  --items N       items to screen (default 20000)
  --chunks N      pg-boss jobs the items are split into (default 4)
  --workers N     worker processes (default 1: this one)
  --item-ms MS    simulated work per item (default 2)
  --crash-at P    SIGKILL this process (and its workers) at P percent, to show the resume
  --schema NAME   database schema (default demo)
  --fresh         start a new run even if the last one is unfinished
Without DATABASE_URL it starts an embedded PostgreSQL with its data in .demo-data/.`);
  process.exit(0);
}

const database = await openDatabase();
const schema = flags.schema;
if (!/^[a-z_][a-z0-9_]*$/.test(schema))
  throw new Error(`--schema must be a lower-case identifier (got ${schema})`);

if (flags.worker) {
  await runWorker();
} else {
  await runDemo();
}

/** An extra worker process: works the queue until SIGTERM, or dies with its parent. */
async function runWorker(): Promise<void> {
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

async function runDemo(): Promise<void> {
  const items = positive('items', flags.items);
  const chunkCount = Math.min(positive('chunks', flags.chunks), items);
  const workerCount = positive('workers', flags.workers);
  const itemMs = Number(flags['item-ms']);
  const crashAt = flags['crash-at'] === undefined ? undefined : Number(flags['crash-at']);
  const view = new ProgressView();

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
  const app = await NestFactory.createApplicationContext(
    DemoModule.register({ url: database.url, schema, synchronize: true }),
    { logger: ['error', 'warn'] },
  );
  const dataSource = app.get<DataSource>(getDataSourceToken());
  const service = app.get(CheckpointService);
  const runs = dataSource.getRepository(DemoRun);
  const keyOf = (jobId: string) => `${SCREENING_QUEUE}:${jobId}`;

  let run = flags.fresh
    ? null
    : await runs.findOne({ where: { finishedAt: IsNull() }, order: { createdAt: 'DESC' } });
  let initial: Array<CheckpointProgress | null> = [];
  if (run !== null) {
    initial = await Promise.all(run.jobIds.map((id) => service.getProgress(keyOf(id))));
    const summed = sumProgress(initial, run.items, BATCH_SIZE);
    view.say(
      `Resuming run ${run.id.slice(0, 8)} at item ${formatNumber.format(summed.processed)} of ${formatNumber.format(run.items)}` +
        ` (${formatNumber.format(summed.processed)} already screened and committed; attempt ${summed.attempt + 1} goes on from there).`,
    );
  } else {
    const jobIds = Array.from({ length: chunkCount }, () => randomUUID());
    run = await runs.save({ id: randomUUID(), items, jobIds, finishedAt: null });
    const boss = app.get(PgBoss);
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

  const workers: ChildProcess[] = [];
  for (let i = 1; i < workerCount; i++) {
    workers.push(
      spawn(process.execPath, [process.argv[1] ?? '', '--worker', '--schema', schema], {
        env: { ...process.env, DATABASE_URL: database.url },
        stdio: ['ignore', 'ignore', 'inherit'],
      }),
    );
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
      const progress = sumProgress(chunks, current.items, BATCH_SIZE);
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
    await database.stop();
    process.exit(0);
  }

  async function finish(): Promise<void> {
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
    await database.stop();
    process.exit(rows === distinct && distinct === current.items ? 0 : 1);
  }
}

function positive(name: string, value: string | undefined): number {
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < 1)
    throw new Error(`--${name} must be a whole number >= 1 (got ${value})`);
  return parsed;
}
