import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { Injectable, Module, type INestApplicationContext } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule, getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import {
  CheckpointConfigError,
  CheckpointFencedError,
  CheckpointLeaseConflictError,
  CheckpointModule,
  CheckpointService,
  CheckpointStoreError,
  CheckpointValidationError,
  checkpointMigrations,
  type CheckpointData,
} from '../../src/index.js';
import { checkpointSql } from '../../src/checkpoint.sql.js';
import { CountingLogger, createTestApp } from '../support/app.js';
import { DATABASE_URL, dropSchema, sql, uniqueSchema } from '../support/database.js';
import { Child } from '../support/process.js';
import { DEFAULT_LEASE_TTL_MS } from '../../src/checkpoint.constants.js';

const schema = uniqueSchema('svc');
const apps: INestApplicationContext[] = [];
const logger = new CountingLogger();
let app: INestApplicationContext;
let service: CheckpointService;

async function boot(
  options: Parameters<typeof createTestApp>[0],
): Promise<INestApplicationContext> {
  const created = await createTestApp(options);
  apps.push(created);
  return created;
}

async function tableExists(inSchema: string): Promise<boolean> {
  const rows = await sql<{ exists: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS exists`, [
    `"${inSchema}"."checkpoint"`,
  ]);
  return rows[0]?.exists === true;
}

before(async () => {
  app = await boot({ schema, logger, checkpoint: { maxPayloadBytes: 4096 } });
  service = app.get(CheckpointService);
});

after(async () => {
  for (const each of apps.reverse()) await each.close();
  await dropSchema(schema);
});

describe('CheckpointModule', () => {
  it('forRoot() migrates its own schema and serves CheckpointService', async () => {
    assert.ok(await tableExists(schema));
    const migrations = await sql<{ version: number }>(
      `SELECT version FROM "${schema}"."migration"`,
    );
    assert.deepEqual(
      migrations.map((row) => row.version),
      checkpointMigrations.map((migration) => migration.version),
    );
  });

  it('forRootAsync() accepts useFactory with imports and inject, useClass and useExisting', async () => {
    @Injectable()
    class SettingsService {
      readonly schema = uniqueSchema('async');
      createCheckpointOptions() {
        return { schema: this.schema };
      }
    }
    @Module({ providers: [SettingsService], exports: [SettingsService] })
    class SettingsModule {}

    const forms = [
      CheckpointModule.forRootAsync({
        imports: [SettingsModule],
        inject: [SettingsService],
        useFactory: (settings: SettingsService) => ({ schema: settings.schema }),
      }),
      CheckpointModule.forRootAsync({ useClass: SettingsService }),
      CheckpointModule.forRootAsync({ imports: [SettingsModule], useExisting: SettingsService }),
    ];
    for (const form of forms) {
      const moduleRef = await Test.createTestingModule({
        imports: [
          TypeOrmModule.forRoot({ type: 'postgres', url: DATABASE_URL, extra: { max: 2 } }),
          form,
        ],
      }).compile();
      const created = await moduleRef.init();
      const used = await created.get(CheckpointService).loadCheckpoint('nothing-here');
      assert.equal(used, null);
      const settingsSchema = created.get<SettingsService>(SettingsService, {
        strict: false,
      }).schema;
      assert.ok(await tableExists(settingsSchema), `${settingsSchema} was migrated`);
      await created.close();
      await dropSchema(settingsSchema);
    }
  });

  it('uses a named DataSource when asked, and no pool of its own', async () => {
    const named = uniqueSchema('named');
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({
          name: 'reporting',
          type: 'postgres',
          url: DATABASE_URL,
          extra: { max: 2, application_name: 'reporting-pool' },
        }),
        CheckpointModule.forRoot({ schema: named, dataSource: 'reporting', isGlobal: true }),
      ],
    }).compile();
    const created = await moduleRef.init();
    const dataSource = created.get<DataSource>(getDataSourceToken('reporting'));
    await created.get(CheckpointService).saveCheckpoint('k', {
      currentBatchIndex: 0,
      currentIndex: 0,
      processedBatches: 0,
      totalBatches: 1,
    });
    const rows = await dataSource.query<Array<{ n: number }>>(
      `SELECT count(*)::int AS n FROM "${named}"."checkpoint"`,
    );
    assert.equal(rows[0]?.n, 1);
    // The lease session is one of the host pool's connections, not a connection of its own.
    await created.get(CheckpointService).claim('leased');
    const holders = await sql<{ application_name: string }>(
      `SELECT a.application_name FROM "${named}".checkpoint c
         JOIN pg_stat_activity a ON a.pid = c.owner_pid AND a.backend_start = c.owner_started
        WHERE c.key = 'leased'`,
    );
    assert.deepEqual(
      holders.map((row) => row.application_name),
      ['reporting-pool'],
    );
    await created.close();
    await dropSchema(named);
  });

  it('stops bootstrap on a bad option, naming the option and what is allowed', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [
        { schema: 'x; drop table y' },
        /schema must be a lower-case identifier matching .* \(got "x; drop table y"\)/,
      ],
      [{ maxPayloadBytes: -5 }, /maxPayloadBytes must be a whole number >= 1 \(got -5\)/],
      [{ directThreshold: 1.5 }, /directThreshold must be a whole number >= 0 \(got 1.5\)/],
      [{ migrationsRun: 'yes' }, /migrationsRun must be true or false/],
      [{ shcema: 'typo' }, /unknown option "shcema"/],
    ];
    for (const [options, message] of cases) {
      const moduleRef = Test.createTestingModule({
        imports: [
          TypeOrmModule.forRoot({ type: 'postgres', url: DATABASE_URL, extra: { max: 1 } }),
          CheckpointModule.forRoot(options),
        ],
      });
      await assert.rejects(
        async () => {
          const compiled = await moduleRef.compile();
          await compiled.close();
        },
        (error: Error) => error instanceof CheckpointConfigError && message.test(error.message),
        `options ${JSON.stringify(options)}`,
      );
    }
  });

  it('ten modules booting at once against an empty schema all succeed', async () => {
    const fresh = uniqueSchema('boot');
    const booted = await Promise.all(
      Array.from({ length: 10 }, () => createTestApp({ schema: fresh, poolSize: 2 })),
    );
    assert.ok(await tableExists(fresh));
    const migrations = await sql(`SELECT version FROM "${fresh}"."migration"`);
    assert.equal(migrations.length, checkpointMigrations.length);
    for (const each of booted) await each.close();
    await dropSchema(fresh);
  });
});

describe('the original five methods', () => {
  it('round-trip every field', async () => {
    const data: CheckpointData = {
      currentBatchIndex: 5,
      currentIndex: 250,
      processedBatches: 5,
      totalBatches: 20,
      intermediateResult: { included: 120, excluded: [1, 2, 3], note: 'ok' },
      metadata: { model: 'gpt', nested: { a: 1 } },
    };
    await service.saveCheckpoint('job-1', data);
    const loaded = await service.loadCheckpoint('job-1');
    assert.ok(loaded);
    const { lastUpdate, ...fields } = loaded;
    assert.deepEqual(fields, data);
    assert.ok(lastUpdate instanceof Date && Date.now() - lastUpdate.getTime() < 60_000);

    const progress = await service.getProgress('job-1');
    assert.ok(progress);
    assert.equal(progress.currentBatch, 5);
    assert.equal(progress.totalBatches, 20);
    assert.equal(progress.processedBatches, 5);
    assert.equal(progress.percentage, 25);
    assert.equal(progress.processedItems, 250);
    assert.equal(await service.canResume('job-1'), true);

    // A save replaces the checkpoint as a whole, as before.
    await service.saveCheckpoint('job-1', {
      currentBatchIndex: 20,
      currentIndex: 1000,
      processedBatches: 20,
      totalBatches: 20,
    });
    const replaced = await service.loadCheckpoint('job-1');
    assert.equal(replaced?.intermediateResult, undefined);
    assert.equal(replaced?.metadata, undefined);
    assert.equal(await service.canResume('job-1'), false);
    assert.equal((await service.getProgress('job-1'))?.percentage, 100);

    await service.clearCheckpoint('job-1');
    assert.equal(await service.loadCheckpoint('job-1'), null);
    assert.equal(await service.getProgress('job-1'), null);
    assert.equal(await service.canResume('job-1'), false);
  });

  it('a failed read or write throws; a failed read never looks like "no checkpoint"', async () => {
    const broken = uniqueSchema('broken');
    const created = await createTestApp({ schema: broken, poolSize: 2 });
    const brokenService = created.get(CheckpointService);
    await brokenService.saveCheckpoint('k', {
      currentBatchIndex: 1,
      currentIndex: 1,
      processedBatches: 1,
      totalBatches: 2,
    });
    // The table goes away under the service...
    await sql(`ALTER TABLE "${broken}"."checkpoint" RENAME TO gone`);
    await assert.rejects(brokenService.loadCheckpoint('k'), CheckpointStoreError);
    await assert.rejects(brokenService.canResume('k'), CheckpointStoreError);
    // Writes fail as loudly as reads.
    await assert.rejects(
      brokenService.saveCheckpoint('k', {
        currentBatchIndex: 2,
        currentIndex: 2,
        processedBatches: 2,
        totalBatches: 2,
      }),
      (error: Error) =>
        error instanceof CheckpointStoreError &&
        /checkpoint save of key "k" failed in the database/.test(error.message),
    );
    await assert.rejects(brokenService.claim('k'), CheckpointStoreError);
    await sql(`ALTER TABLE "${broken}".gone RENAME TO checkpoint`);
    assert.equal((await brokenService.loadCheckpoint('k'))?.currentIndex, 1);
    // ...and then the connection pool does.
    await created.get<DataSource>(getDataSourceToken()).destroy();
    await assert.rejects(brokenService.loadCheckpoint('k'), CheckpointStoreError);
    await assert.rejects(brokenService.getProgress('k'), CheckpointStoreError);
    await created.close().catch(() => undefined);
    await dropSchema(broken);
  });

  it('invalid data throws CheckpointValidationError and writes nothing', async () => {
    const valid: CheckpointData = {
      currentBatchIndex: 1,
      currentIndex: 10,
      processedBatches: 1,
      totalBatches: 4,
    };
    await service.saveCheckpoint('valid', valid);
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const bad: Array<[string, CheckpointData]> = [
      ['valid', { ...valid, currentIndex: -1 }],
      ['valid', { ...valid, processedBatches: 1.5 }],
      ['valid', { ...valid, totalBatches: Number.NaN }],
      ['valid', { ...valid, processedBatches: 5, totalBatches: 4 }],
      ['valid', { ...valid, intermediateResult: { big: 10n } }],
      ['valid', { ...valid, intermediateResult: circular }],
      ['valid', { ...valid, metadata: { blob: 'x'.repeat(5000) } }],
      ['', valid],
      ['k'.repeat(513), valid],
    ];
    for (const [key, data] of bad) {
      await assert.rejects(
        service.saveCheckpoint(key, data),
        CheckpointValidationError,
        JSON.stringify(data, (_, v: unknown) =>
          typeof v === 'bigint' ? 'bigint' : v === circular ? '[circular]' : v,
        ),
      );
    }
    const { lastUpdate: _ignored, ...stored } = (await service.loadCheckpoint('valid')) ?? {};
    assert.deepEqual(stored, valid);
    const count = await sql<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${schema}"."checkpoint" WHERE key = '' OR length(key) > 512`,
    );
    assert.equal(count[0]?.n, 0);
    await service.saveCheckpoint('k'.repeat(512), valid);
  });

  it('each save and each advance is exactly one SQL statement', async () => {
    // Progress notifications for watch() are one coalesced statement per 100 ms per process,
    // whatever the number of writes, sent on the lease session: not part of any write.
    const perWrite = (statements: string[]) =>
      statements.filter((text) => !text.includes('pg_notify'));
    const saveStatements = await logger.during(() =>
      service.saveCheckpoint('counted', {
        currentBatchIndex: 1,
        currentIndex: 50,
        processedBatches: 1,
        totalBatches: 10,
        metadata: { a: 1 },
      }),
    );
    assert.equal(perWrite(saveStatements).length, 1, saveStatements.join('\n'));
    assert.match(perWrite(saveStatements)[0] ?? '', /^INSERT/);
    const claim = await service.claim('counted-advance');
    const advanceStatements = await logger.during(() =>
      service.advance('counted-advance', claim.epoch, {
        currentIndex: 50,
        processedBatches: 1,
        totalBatches: 10,
      }),
    );
    assert.equal(perWrite(advanceStatements).length, 1, advanceStatements.join('\n'));
    assert.match(perWrite(advanceStatements)[0] ?? '', /^UPDATE/);

    // The notifications really are coalesced: 200 advances send a handful, not 200.
    const started = Date.now();
    const burst = await logger.during(async () => {
      for (let batch = 2; batch <= 201; batch++) {
        await service.advance('counted-advance', claim.epoch, {
          currentIndex: batch * 50,
          processedBatches: batch,
        });
      }
    });
    const notifies = burst.length - perWrite(burst).length;
    assert.equal(perWrite(burst).length, 200);
    assert.ok(notifies <= Math.ceil((Date.now() - started) / 100) + 1, `${notifies} notifications`);
    await service.complete('counted-advance', claim.epoch, { ok: true });
  });
});

describe('ownership', () => {
  it('refuses a second live owner at once, in this process and from another', async () => {
    // A claim never waits for the lease: a conflict is refused, not queued behind it.
    const first = await service.claim('owned');
    await assert.rejects(service.claim('owned'), CheckpointLeaseConflictError);
    const other = await boot({ schema, poolSize: 2 });
    await assert.rejects(other.get(CheckpointService).claim('owned'), CheckpointLeaseConflictError);
    await service.release('owned', first.epoch);
    const again = await other.get(CheckpointService).claim('owned');
    assert.equal(again.epoch, first.epoch + 1);
    await other.get(CheckpointService).complete('owned', again.epoch);
  });

  it('takes over at once when the owner process is killed, and bumps the epoch', async (t: TestContext) => {
    const holder = Child.start('claim-holder', { SCHEMA: schema, KEY: 'killed-owner' });
    const line = await holder.waitFor((l) => l.startsWith('claimed '));
    const heldEpoch = Number(line.split(' ')[1]);
    await assert.rejects(service.claim('killed-owner'), CheckpointLeaseConflictError);
    holder.process.kill('SIGKILL');
    const killedAt = Date.now();
    await holder.exited;
    let claim;
    for (;;) {
      try {
        claim = await service.claim('killed-owner');
        break;
      } catch (error) {
        assert.ok(error instanceof CheckpointLeaseConflictError);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
    const takeoverMs = Date.now() - killedAt;
    t.diagnostic(`takeover ${takeoverMs} ms after SIGKILL of the owner`);
    // At once, not at the lease's expiry (how fast goes to the bench: a bound in seconds fails
    // on a busy machine).
    assert.ok(takeoverMs < DEFAULT_LEASE_TTL_MS / 2, `takeover took ${takeoverMs} ms`);
    assert.equal(claim.epoch, heldEpoch + 1);
    assert.equal(claim.attempt, 2);
    await service.complete('killed-owner', claim.epoch);
  });

  it('fences a stale epoch: its advance changes no row and throws', async () => {
    const owner = await boot({ schema, poolSize: 3 });
    const ownerService = owner.get(CheckpointService);
    const stale = await ownerService.claim('fenced', { dispatch: 0 });
    await ownerService.advance('fenced', stale.epoch, {
      currentIndex: 100,
      processedBatches: 2,
      totalBatches: 10,
    });
    // A newer dispatch of the same job takes over while the old attempt still runs.
    const fresh = await service.claim('fenced', { dispatch: 1 });
    assert.equal(fresh.epoch, stale.epoch + 1);
    assert.equal(fresh.resumeFrom, 100);
    const before = await service.find('fenced');
    await assert.rejects(
      ownerService.advance('fenced', stale.epoch, {
        currentIndex: 999,
        processedBatches: 9,
        totalBatches: 10,
      }),
      CheckpointFencedError,
    );
    assert.equal(stale.signal.aborted, true, 'the fenced write fired the attempt signal');
    await assert.rejects(
      ownerService.complete('fenced', stale.epoch, 'stale result'),
      CheckpointFencedError,
    );
    const afterwards = await service.find('fenced');
    assert.deepEqual(afterwards, before);
    await service.complete('fenced', fresh.epoch);
  });

  it('a cut lease session is replaced and its leases re-asserted; the attempt goes on', async () => {
    const owner = await boot({ schema, poolSize: 3 });
    const ownerService = owner.get(CheckpointService);
    const claim = await ownerService.claim('cut');
    const [before] = await sql<{ owner_pid: number }>(
      `SELECT owner_pid FROM "${schema}".checkpoint WHERE key = 'cut'`,
    );
    await sql(`SELECT pg_terminate_backend($1)`, [before?.owner_pid]);
    let moved: { owner_pid: number; alive: boolean } | undefined;
    for (let i = 0; i < 100 && (moved?.owner_pid ?? before?.owner_pid) === before?.owner_pid; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      [moved] = await sql<{ owner_pid: number; alive: boolean }>(
        `SELECT c.owner_pid, EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = c.owner_pid
                  AND a.backend_start = c.owner_started) AS alive
           FROM "${schema}".checkpoint c WHERE key = 'cut'`,
      );
    }
    assert.notEqual(moved?.owner_pid, before?.owner_pid, 'the lease names the new session');
    assert.equal(moved?.alive, true);
    assert.equal(claim.signal.aborted, false);
    await assert.rejects(service.claim('cut'), CheckpointLeaseConflictError);
    await ownerService.advance('cut', claim.epoch, { currentIndex: 10 });
    await ownerService.complete('cut', claim.epoch);
  });

  it('an advance finds its row by the primary key, however many keys run', async () => {
    // A table as the migrations leave it (never analyzed), with many keys running: fencing on
    // `state = 'running'` made the planner walk the running keys by the partial index on state.
    const fresh = uniqueSchema('plan');
    const created = await createTestApp({ schema: fresh, poolSize: 2 });
    await sql(
      `INSERT INTO "${fresh}".checkpoint (key, state, epoch, running_epoch, queue)
       SELECT 'running-' || i, 'running', 1, 1, 'q' FROM generate_series(1, 64) AS i`,
    );
    const advance = checkpointSql(fresh).advance(
      'running-25',
      1,
      100,
      1,
      1,
      10,
      1000,
      null,
      null,
      null,
    );
    const plan = await sql<{ 'QUERY PLAN': string }>(`EXPLAIN ${advance.text}`, advance.values);
    const scans = plan.map((row) => row['QUERY PLAN']).filter((line) => line.includes('Scan'));
    assert.equal(scans.length, 1, scans.join('\n'));
    assert.match(scans[0] ?? '', /Index Scan using checkpoint_pkey/);
    await created.close();
    await dropSchema(fresh);
  });

  it('fifty concurrent advances by the owner leave a consistent row', async () => {
    const claim = await service.claim('concurrent');
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        service.advance('concurrent', claim.epoch, {
          currentIndex: (i + 1) * 10,
          currentBatchIndex: i + 1,
          processedBatches: i + 1,
          totalBatches: 50,
          intermediateResult: { batch: i + 1 },
        }),
      ),
    );
    const row = await service.find('concurrent');
    assert.ok(row);
    const batch = row.processedBatches;
    assert.ok(batch >= 1 && batch <= 50);
    assert.equal(row.currentIndex, batch * 10);
    assert.equal(row.currentBatchIndex, batch);
    assert.deepEqual(row.intermediateResult, { batch });
    assert.equal(row.epoch, claim.epoch);
    await service.complete('concurrent', claim.epoch);
    assert.equal((await service.find('concurrent'))?.state, 'completed');
  });

  it('list() and purge() select by state and age', async () => {
    const completed = (await service.list({ state: 'completed' })).items;
    assert.ok(completed.length >= 3);
    assert.ok(completed.every((row) => row.state === 'completed'));
    assert.equal(await service.purge({ olderThan: { days: 1 } }), 0);
    const purged = await service.purge({ olderThan: new Date(Date.now() + 1000) });
    assert.equal(purged, completed.length);
    assert.equal((await service.list({ state: 'completed' })).items.length, 0);
  });
});
