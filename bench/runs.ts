// 8. Runs: start() of a 1,000,000-item run (time and statements) beside the hand-made fan-out it
// replaces (one pg-boss send per chunk, no transaction); the progress read of a 1,000-chunk run
// beside a single key's progress read; and watch() with 100 subscribers in one process.
import 'reflect-metadata';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { PgBoss } from 'pg-boss';
import { firstValueFrom, filter, type Subscription } from 'rxjs';
import type { Logger as TypeOrmLogger } from 'typeorm';
import {
  CHECKPOINT_BOSS,
  CheckpointModule,
  CheckpointRuns,
  CheckpointService,
  chunkJobId,
  type Run,
} from '../src/index.js';
import type { BenchEnv } from './env.js';
import { interleave, samplesOf, sleep, summarize, timed, type Variant } from './harness.js';
import {
  count,
  latencyCells,
  ms,
  ratio,
  summaryJson,
  target,
  type Json,
  type Section,
} from './report.js';

const QUEUE = 'bench-runs';
const ITEMS = 1_000_000;
const CHUNK_SIZE = 1000;
const START_ROUNDS = 3;
const READ_ROUNDS = 300;
const SUBSCRIBERS = 100;
const CHANGES = 40;

/** Counts the statements the application sends (pg-boss's inside start() go through TypeORM). */
class CountingLogger implements TypeOrmLogger {
  statements = 0;
  logQuery(): void {
    this.statements += 1;
  }
  logQueryError(): void {}
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(): void {}
}

export async function measureRuns(env: BenchEnv): Promise<Section> {
  const bossSchema = `${env.schema}_boss`;
  const logger = new CountingLogger();
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot({
        type: 'postgres',
        url: env.url,
        schema: env.schema,
        synchronize: false,
        logger,
        logging: ['query'],
        extra: { max: 6 },
      }),
      CheckpointModule.forRoot({
        schema: env.schema,
        boss: { connectionString: env.url, schema: bossSchema, max: 3, supervise: false },
      }),
    ],
  }).compile();
  moduleRef.useLogger(['error', 'warn']);
  await moduleRef.init();
  const runs = moduleRef.get(CheckpointRuns);
  const service = moduleRef.get(CheckpointService);
  const boss = moduleRef.get<PgBoss>(CHECKPOINT_BOSS);
  const items = Array.from({ length: ITEMS }, (_, i) => i);
  const chunks = ITEMS / CHUNK_SIZE;
  const raw: Record<string, Json> = {};
  const rows: string[][] = [];
  const targets = [];
  try {
    await boss.createQueue(QUEUE);

    // --- start() against the hand-made fan-out ------------------------------------------------
    let startRound = 0;
    let handRound = 0;
    const statements: number[] = [];
    const startLabel = `runs.start(): 1 transaction, ${count(chunks)} chunks`;
    const handLabel = `hand-made: ${count(chunks)} × boss.send(), no transaction`;
    const variants: Variant[] = [
      {
        label: startLabel,
        measure: async () => {
          const before = logger.statements;
          const started = performance.now();
          await runs.start(QUEUE, { id: `bench-${startRound++}`, items, chunkSize: CHUNK_SIZE });
          const took = performance.now() - started;
          statements.push(logger.statements - before);
          return took;
        },
      },
      {
        label: handLabel,
        measure: timed(async () => {
          const id = handRound++;
          for (let i = 0; i < chunks; i++) {
            await boss.send(
              QUEUE,
              { items: items.slice(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE) },
              {
                id: chunkJobId(`hand-${id}`, i),
              },
            );
          }
        }),
      },
    ];
    env.progress(`8. runs: start() of ${count(ITEMS)} items, ${START_ROUNDS} rounds`);
    const startSamples = await interleave(variants, env.scaled(START_ROUNDS, 1), 0);
    const start = summarize(samplesOf(startSamples, startLabel));
    const hand = summarize(samplesOf(startSamples, handLabel));
    rows.push([startLabel, ...latencyCells(start, hand), `${Math.max(...statements)} statements`]);
    rows.push([handLabel, ...latencyCells(hand, hand), `${count(chunks)}+ statements`]);
    raw.start = summaryJson(start, samplesOf(startSamples, startLabel));
    raw.handMade = summaryJson(hand, samplesOf(startSamples, handLabel));
    raw.startStatements = statements;
    targets.push(
      target(
        `start() of ${count(ITEMS)} items sends a fixed number of statements (${Math.max(...statements)}), not one per chunk`,
        Math.max(...statements) < 20,
      ),
    );

    // --- progress of a 1,000-chunk run against one key's progress -----------------------------
    // Half the chunks under way, a quarter done: rows as a live run leaves them.
    await env.raw.query(
      `UPDATE "${env.schema}".checkpoint SET
         state = CASE WHEN run_chunk % 4 = 0 THEN 'completed' ELSE 'running' END,
         current_index = CASE WHEN run_chunk % 4 = 0 THEN total_items ELSE total_items / 2 END,
         attempt = 1, attempt_started_at = now(), updated_at = now()
       WHERE run_id = 'bench-0' AND run_chunk % 2 = 0`,
    );
    const single = `${QUEUE}:${chunkJobId('bench-0', 0)}`;
    const runLabel = `runs.get(): progress of a ${count(chunks)}-chunk run (1 statement)`;
    const keyLabel = 'service.getProgress(): one key (floor)';
    env.progress(`8. runs: progress reads, ${READ_ROUNDS} rounds`);
    const readSamples = await interleave(
      [
        { label: runLabel, measure: timed(() => runs.get('bench-0')) },
        { label: keyLabel, measure: timed(() => service.getProgress(single)) },
      ],
      env.scaled(READ_ROUNDS, 30),
      env.scaled(30, 3),
    );
    const runRead = summarize(samplesOf(readSamples, runLabel));
    const keyRead = summarize(samplesOf(readSamples, keyLabel));
    rows.push([runLabel, ...latencyCells(runRead, keyRead), '1 statement']);
    rows.push([keyLabel, ...latencyCells(keyRead, keyRead), '1 statement']);
    raw.runProgress = summaryJson(runRead);
    raw.keyProgress = summaryJson(keyRead);
    targets.push(
      target(
        `a ${count(chunks)}-chunk run's progress in one statement: p50 ${ms(runRead.p50)}, ${ratio(runRead.p50 / keyRead.p50)} a single row (≤ 20x)`,
        runRead.p50 / keyRead.p50 <= 20,
      ),
    );

    // --- watch() with 100 subscribers -----------------------------------------------------------
    const watched = 'bench-1';
    const chunkKey = `${QUEUE}:${chunkJobId(watched, 0)}`;
    const claim = await service.claim(chunkKey);
    let latest: Run | undefined;
    const received = new Array<number>(SUBSCRIBERS).fill(0);
    const subscriptions: Subscription[] = [];
    const observable = runs.watch(watched);
    for (let i = 0; i < SUBSCRIBERS; i++) {
      subscriptions.push(
        observable.subscribe((run) => {
          latest = run;
          received[i] = run.processedItems;
        }),
      );
    }
    await firstValueFrom(observable);
    const readsBefore = logger.statements;
    const delivery: number[] = [];
    env.progress(`8. runs: watch() with ${SUBSCRIBERS} subscribers, ${CHANGES} changes`);
    for (let change = 1; change <= env.scaled(CHANGES, 5); change++) {
      const started = performance.now();
      await service.advance(chunkKey, claim.epoch, { currentIndex: change });
      await firstValueFrom(observable.pipe(filter((run) => run.processedItems >= change)));
      while (received.some((value) => value < change)) await sleep(1);
      delivery.push(performance.now() - started);
    }
    const statementsPerChange = (logger.statements - readsBefore) / delivery.length;
    for (const subscription of subscriptions) subscription.unsubscribe();
    const watch = summarize(delivery);
    rows.push([
      `runs.watch(): ${SUBSCRIBERS} subscribers, advance → all ${SUBSCRIBERS} have it`,
      count(watch.n),
      ms(watch.p50),
      ms(watch.p99),
      '',
      '',
      `${statementsPerChange.toFixed(1)} statements per change`,
    ]);
    raw.watch = summaryJson(watch, delivery);
    raw.watchStatementsPerChange = statementsPerChange;
    targets.push(
      target(
        `${SUBSCRIBERS} subscribers share one reader: ${statementsPerChange.toFixed(1)} statements per change (advance, notify, one read; ≤ 5)`,
        statementsPerChange <= 5 && latest !== undefined,
      ),
    );
  } finally {
    await moduleRef.close();
    await env.raw.query(`DROP SCHEMA IF EXISTS "${bossSchema}" CASCADE`);
  }
  return {
    id: '8',
    title: 'Runs: start, progress, watch',
    about:
      `start() of a ${count(ITEMS)}-item run in chunks of ${count(CHUNK_SIZE)}: the run row, ` +
      `${count(chunks)} checkpoint rows and ${count(chunks)} pg-boss jobs in one transaction, ` +
      'beside the hand-made fan-out it replaces (one send per chunk, nothing atomic), interleaved. ' +
      `Then the progress read of that run (one statement over its ${count(chunks)} chunk rows) ` +
      `beside a single key's, and watch() with ${SUBSCRIBERS} subscribers in one process: the ` +
      'time from an advance in this process until every subscriber holds the new value ' +
      '(notifications are coalesced on a 100 ms timer, which bounds it from below).',
    columns: ['operation', 'n', 'p50', 'p99', 'p50 ratio', 'p99 ratio', 'statements'],
    rows,
    targets,
    notes: [],
    raw,
  };
}
