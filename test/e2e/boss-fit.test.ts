// Fitting into applications that already run pg-boss: tokens, borrowed and foreign instances,
// queues that already exist, hand-written handlers, and the seed's calls in the caller's
// transaction.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  ConsoleLogger,
  Inject,
  Injectable,
  Module,
  Optional,
  type DynamicModule,
  type INestApplicationContext,
} from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule, getDataSourceToken } from '@nestjs/typeorm';
import { bossMessages } from '../../src/boss/boss.messages.js';
import { loadedBossVersion, otherBossCopies } from '../../src/boss/checkpoint-boss.js';
import { PgBoss, type ConstructorOptions, type Job } from 'pg-boss';
import type { DataSource } from 'typeorm';
import {
  CHECKPOINT_BOSS,
  CHECKPOINT_CONTEXT,
  CheckpointCtx,
  CheckpointJobs,
  CheckpointModule,
  CheckpointService,
  Checkpointed,
  CheckpointValidationError,
  InjectCheckpointBoss,
  type CheckpointContext,
} from '../../src/index.js';
import { AppBossModule } from '../fixtures/app-boss.module.js';
import { createJobEffectTable, QUEUE, ScreeningJob } from '../fixtures/queue-job.js';
import { createTestApp } from '../support/app.js';
import { DATABASE_URL, dropSchema, sql, uniqueSchema } from '../support/database.js';

const schema = uniqueSchema('bossfit');
const bossSchema = `${schema}_boss`;
const appBossSchema = `${schema}_appboss`;
const cleanups: Array<() => Promise<void>> = [];

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  await dropSchema(schema);
  await dropSchema(bossSchema);
  await dropSchema(appBossSchema);
});

const bossOptions = (name: string): ConstructorOptions => ({
  connectionString: DATABASE_URL,
  schema: name,
  max: 2,
  supervise: false,
  schedule: false,
});

/** An application provider that injects both: the app's PgBoss and the library's. */
@Injectable()
class BothSides {
  constructor(
    @Inject(PgBoss) readonly appBoss: PgBoss,
    @Optional() @InjectCheckpointBoss() readonly checkpointBoss?: PgBoss | null,
  ) {}
}

async function boot(imports: Array<DynamicModule>, providers = [BothSides]) {
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot({
        type: 'postgres',
        url: DATABASE_URL,
        schema,
        extra: { max: 4 },
      }),
      ...imports,
    ],
    providers,
  }).compile();
  moduleRef.useLogger(['error']);
  await moduleRef.init();
  cleanups.push(() => moduleRef.close());
  return moduleRef;
}

describe('tokens: the library never takes the PgBoss class token', () => {
  for (const order of ['checkpoint first', 'application first'] as const) {
    it(`an app that provides PgBoss itself and imports the module (${order}) boots; each side gets its own`, async () => {
      const appBoss = AppBossModule.forRoot(bossOptions(appBossSchema), { global: false });
      const checkpoint = CheckpointModule.forRoot({ schema, boss: bossOptions(bossSchema) });
      const app = await boot(
        order === 'checkpoint first' ? [checkpoint, appBoss] : [appBoss, checkpoint],
      );
      const both = app.get(BothSides);
      assert.ok(both.appBoss instanceof PgBoss);
      assert.ok(both.checkpointBoss instanceof PgBoss);
      assert.notEqual(both.appBoss, both.checkpointBoss, 'two instances, each where expected');
      assert.equal(app.get(PgBoss), both.appBoss);
      await app.close();
    });
  }

  it('without a boss option the module exports no instance, and the app keeps its own', async () => {
    const app = await boot([
      CheckpointModule.forRoot({ schema }),
      AppBossModule.forRoot(bossOptions(appBossSchema), { global: false }),
    ]);
    const both = app.get(BothSides);
    assert.ok(both.appBoss instanceof PgBoss);
    assert.equal(both.checkpointBoss, undefined, 'CHECKPOINT_BOSS is not exported');
    await app.close();
  });

  it('forRootAsync({ inject: [PgBoss], useFactory: (boss) => ({ boss }) }) borrows the app instance, no cycle', async () => {
    const app = await boot([
      AppBossModule.forRoot(bossOptions(appBossSchema)),
      CheckpointModule.forRootAsync({
        inject: [PgBoss],
        useFactory: (boss: PgBoss) => ({ schema, boss }),
      }),
    ]);
    const both = app.get(BothSides);
    assert.equal(both.checkpointBoss, both.appBoss);
    await closeAndCheckUnguarded(app, both.appBoss);
  });

  it('the bossToken extra borrows the instance of any token in one line', async () => {
    const app = await boot([
      AppBossModule.forRoot(bossOptions(appBossSchema)),
      CheckpointModule.forRoot({ schema, bossToken: PgBoss }),
    ]);
    const both = app.get(BothSides);
    assert.equal(both.checkpointBoss, both.appBoss);
    assert.equal(app.get(CHECKPOINT_BOSS, { strict: false }), both.appBoss);
    await closeAndCheckUnguarded(app, both.appBoss);
  });
});

/** The app stopped its instance through the guard; the guard is gone afterwards. */
async function closeAndCheckUnguarded(app: INestApplicationContext, boss: PgBoss) {
  assert.ok(Object.prototype.hasOwnProperty.call(boss, 'stop'), 'stop() is guarded while running');
  await app.close();
  assert.equal(
    Object.prototype.hasOwnProperty.call(boss, 'stop'),
    false,
    "pg-boss's own stop() is back",
  );
}

describe('a foreign pg-boss is refused at bootstrap', () => {
  /** What another major version looks like: a PgBoss class of its own, without v12's methods. */
  class ForeignPgBoss {
    start() {}
    stop() {}
    work() {}
    send() {}
    fetch() {}
  }

  it('an instance of another PgBoss class, given as boss', async () => {
    await assert.rejects(
      createTestApp({
        schema,
        checkpoint: { boss: new ForeignPgBoss() as unknown as PgBoss },
      }),
      (error: Error) => {
        assert.match(error.message, /pg-boss 12\.\d+\.\d+/);
        assert.match(error.message, /ForeignPgBoss without findJobs, getQueue, updateQueue/);
        assert.match(error.message, /another major version/);
        return true;
      },
    );
  });

  it('names the other copies of pg-boss installed, with their versions', async () => {
    // A real layout: a package carrying its own pg-boss 10 beside the application's copy.
    const root = await mkdtemp(join(tmpdir(), 'checkpoint-boss-copies-'));
    try {
      const nested = join(root, 'node_modules', 'legacy-jobs', 'node_modules', 'pg-boss');
      await mkdir(nested, { recursive: true });
      await writeFile(join(nested, 'package.json'), '{"name":"pg-boss","version":"10.1.6"}');
      const loaded = loadedBossVersion();
      const copies = otherBossCopies(root, loaded.path);
      assert.deepEqual(copies, [`pg-boss 10.1.6 at ${nested}`]);
      const message = bossMessages.foreignBoss(
        'an instance of PgBoss',
        loaded.version,
        loaded.path,
        copies,
      );
      assert.match(message, new RegExp(`pg-boss ${loaded.version.replace(/\./g, '\\.')}, from `));
      assert.match(message, /Other copies found: pg-boss 10\.1\.6 at /);
      // The application's own tree holds only the copy the library loads.
      assert.deepEqual(otherBossCopies(process.cwd(), loaded.path), []);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('a duck-typed object literal, and a foreign instance behind bossToken', async () => {
    await assert.rejects(
      createTestApp({
        schema,
        checkpoint: {
          boss: { start: () => undefined, work: () => undefined } as unknown as PgBoss,
        },
      }),
      /boss must be pg-boss constructor options or an instance of the PgBoss class this library loads \(pg-boss 12/,
    );
    const FOREIGN = Symbol('foreign');
    @Module({
      providers: [{ provide: FOREIGN, useValue: new ForeignPgBoss() }],
      exports: [FOREIGN],
    })
    class ForeignModule {}
    await assert.rejects(
      createTestApp({
        schema,
        checkpointModule: CheckpointModule.forRootAsync({
          imports: [ForeignModule],
          bossToken: FOREIGN,
          useFactory: () => ({ schema }),
        }),
      }),
      /pg-boss 12\.\d+\.\d+/,
    );
  });
});

describe('a queue that already exists', () => {
  it('gets the options it lacks (the heartbeat) through updateQueue, with a warning naming them', async () => {
    await sql(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    await sql(createJobEffectTable(schema));
    const sender = new PgBoss(bossOptions(bossSchema));
    sender.on('error', () => undefined);
    await sender.start();
    cleanups.push(() => sender.stop({ graceful: false }));
    await sender.deleteQueue(QUEUE).catch(() => undefined);
    // Created first by someone else (a wrapper, or a send), without a heartbeat.
    await sender.createQueue(QUEUE, { retryLimit: 3 });
    assert.equal((await sender.getQueue(QUEUE))?.heartbeatSeconds ?? null, null);

    const warnings: string[] = [];
    class Capture extends ConsoleLogger {
      override warn(message: unknown): void {
        warnings.push(String(message));
      }
      override log(): void {}
    }
    const app = await createTestApp({
      schema,
      providers: [ScreeningJob],
      loggerService: new Capture(),
      checkpoint: { boss: bossOptions(bossSchema) },
    });
    cleanups.push(() => app.close());
    const queue = await sender.getQueue(QUEUE);
    assert.equal(queue?.heartbeatSeconds, 10);
    assert.equal(queue?.retryLimit, 20);
    assert.ok(
      warnings.some(
        (line) =>
          line.includes(`queue "${QUEUE}" already existed`) &&
          line.includes('heartbeatSeconds null -> 10') &&
          line.includes('retryLimit 3 -> 20'),
      ),
      warnings.join('\n'),
    );
    await app.close();
  });
});

/** A handler under a wrapper's decorator: the first argument is a pg-boss job. */
@Injectable()
class WrapperStyleHandler {
  @Checkpointed({ key: (job: Job<{ n: number }>) => `wrapped:${job.id}`, batchSize: 10 })
  async handle(
    job: Job<{ n: number }>,
    @CheckpointCtx() ctx: CheckpointContext = CHECKPOINT_CONTEXT,
  ): Promise<number> {
    let seen = 0;
    for await (const batch of ctx.batches(Array.from({ length: job.data.n }, (_, i) => i)))
      seen += batch.items.length;
    return seen;
  }
}

describe('hand-written handlers', () => {
  it('CheckpointJobs.run(): key, queue and job id recorded, dispatch = retryCount, resumes, completes the job in the checkpoint transaction', async () => {
    await sql(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    const app = await createTestApp({
      schema,
      checkpoint: { boss: bossOptions(bossSchema) },
    });
    cleanups.push(() => app.close());
    const boss = app.get<PgBoss>(CHECKPOINT_BOSS);
    const jobs = app.get(CheckpointJobs);
    const queue = 'hand-written';
    await boss.createQueue(queue);
    const id = await boss.send(queue, { n: 45 });
    assert.ok(id);
    const [job] = await boss.fetch<{ n: number }>(queue);
    assert.ok(job);
    const items = Array.from({ length: 45 }, (_, i) => i);
    const seen: number[] = [];
    const work = (failAt?: number) => async (ctx: CheckpointContext) => {
      for await (const batch of ctx.batches(items)) {
        if (batch.index === failAt) throw new Error(`boom at ${failAt}`);
        await batch.manager.query('SELECT 1');
        seen.push(...batch.items);
      }
      return { seen: seen.length };
    };
    await assert.rejects(
      jobs.run(job, work(2), { batchSize: 10, transactional: true, completeJob: true }),
      /boom at 2/,
    );
    const [row] = await sql<{ queue: string; job_id: string; dispatch: number; state: string }>(
      `SELECT queue, job_id, dispatch, state FROM "${schema}".checkpoint WHERE key = $1`,
      [`${queue}:${id}`],
    );
    assert.deepEqual(row, { queue, job_id: id, dispatch: job.retryCount, state: 'failed' });
    const results = await jobs.run([job], work(), {
      batchSize: 10,
      transactional: true,
      completeJob: true,
    });
    assert.deepEqual(results, [{ seen: 45 }]);
    assert.deepEqual(seen, items, 'the second attempt resumed at item 20');
    assert.equal((await boss.getJobById(queue, id))?.state, 'completed');
    await assert.rejects(
      jobs.run({ id: 'x' } as unknown as Job<object>, work()),
      CheckpointValidationError,
    );
  });

  it('@Checkpointed({ key }) called with a pg-boss job records its queue, job id and retry count', async () => {
    const app = await createTestApp({ schema, providers: [WrapperStyleHandler] });
    cleanups.push(() => app.close());
    const job = {
      id: 'job-1',
      name: 'wrapped-queue',
      data: { n: 25 },
      retryCount: 2,
      expireInSeconds: 900,
      heartbeatSeconds: null,
      signal: new AbortController().signal,
    } satisfies Job<{ n: number }>;
    assert.equal(await app.get(WrapperStyleHandler).handle(job), 25);
    const [row] = await sql(
      `SELECT queue, job_id, dispatch, state FROM "${schema}".checkpoint WHERE key = 'wrapped:job-1'`,
    );
    assert.deepEqual(row, {
      queue: 'wrapped-queue',
      job_id: 'job-1',
      dispatch: 2,
      state: 'completed',
    });
  });

  it('the CHECKPOINT_CONTEXT placeholder says what went wrong when a method runs unwrapped', () => {
    assert.throws(
      () => CHECKPOINT_CONTEXT.batches([1]),
      /read outside a checkpointed attempt.*called on an instance made with new|call the method through the provider/,
    );
  });
});

describe("the seed's calls", () => {
  it('saveCheckpoint(key, data, { manager }) commits or rolls back with the caller', async () => {
    const app = await createTestApp({ schema });
    cleanups.push(() => app.close());
    const service = app.get(CheckpointService);
    const dataSource = app.get<DataSource>(getDataSourceToken());
    const data = { currentBatchIndex: 1, currentIndex: 50, processedBatches: 1, totalBatches: 4 };
    await assert.rejects(
      dataSource.transaction(async (manager) => {
        await service.saveCheckpoint('seed-rollback', data, { manager });
        throw new Error('the batch failed');
      }),
      /the batch failed/,
    );
    assert.equal(await service.loadCheckpoint('seed-rollback'), null);
    await dataSource.transaction(async (manager) => {
      await service.saveCheckpoint('seed-commit', data, { manager });
      // Not visible outside the transaction until it commits.
      assert.equal(await service.loadCheckpoint('seed-commit'), null);
    });
    assert.equal((await service.loadCheckpoint('seed-commit'))?.currentIndex, 50);
  });

  it('advance with only currentIndex keeps batch counts and percentage meaningful', async () => {
    const app = await createTestApp({ schema });
    cleanups.push(() => app.close());
    const service = app.get(CheckpointService);
    const claim = await service.claim('advance-index-only', { totalItems: 1000 });
    await service.advance(claim.key, claim.epoch, { currentIndex: 100 });
    let progress = await service.getProgress(claim.key);
    assert.deepEqual(
      [progress?.currentBatch, progress?.processedBatches, progress?.totalBatches],
      [1, 1, 10],
    );
    assert.equal(progress?.percentage, 10);
    await service.advance(claim.key, claim.epoch, { currentIndex: 250 });
    progress = await service.getProgress(claim.key);
    // Two batches done; 750 items left at this batch's 150: five more.
    assert.deepEqual([progress?.processedBatches, progress?.totalBatches], [2, 7]);
    assert.equal(progress?.percentage, 29);
    // The same position again counts no batch.
    await service.advance(claim.key, claim.epoch, { currentIndex: 250 });
    assert.equal((await service.getProgress(claim.key))?.processedBatches, 2);
    await service.complete(claim.key, claim.epoch);
  });
});
