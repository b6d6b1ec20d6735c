// nestjs-checkpoint/testing as a user gets it inside Test.createTestingModule: a fresh schema per
// testing module, interruptions at batch boundaries in one process, the resumability check and
// drain(). The handlers it must catch: writes outside batch.manager, a running total kept in
// memory, output that depends on the batch size.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { Injectable } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import { DataSource } from 'typeorm';
import { Decision } from '../../examples/screening.entities.js';
import { SCREENING_QUEUE, ScreeningService } from '../../examples/screening.service.js';
import {
  CheckpointCtx,
  CheckpointRuns,
  Checkpointed,
  type CheckpointContext,
} from '../../src/index.js';
import {
  CheckpointNotResumableError,
  CheckpointTesting,
  CheckpointTestingModule,
} from '../../src/testing/index.js';
import { sql } from '../support/database.js';

const RUN_ID = '3f1c9a52-8a0e-4c6b-9d7e-2b5f0c1d4e6a';
const items = Array.from({ length: 500 }, (_, i) => i);

/** Writes its decisions through the DataSource, outside the batch's transaction. */
@Injectable()
class OutsideWrites {
  constructor(private readonly dataSource: DataSource) {}

  @Checkpointed({ key: (key: string) => key, batchSize: 50, transactional: true })
  async run(_key: string, @CheckpointCtx() ctx?: CheckpointContext): Promise<number> {
    for await (const batch of (ctx as CheckpointContext).batches(items)) {
      await this.dataSource.getRepository(Decision).insert(
        batch.items.map((item) => ({
          runId: RUN_ID,
          item,
          verdict: 'include' as const,
          attempt: 1,
        })),
      );
    }
    return items.length;
  }
}

/** Sums the items in a local variable: a resumed attempt starts again from zero. */
@Injectable()
class RunningTotal {
  @Checkpointed({ key: (key: string) => key, batchSize: 50, transactional: true })
  async run(_key: string, @CheckpointCtx() ctx?: CheckpointContext): Promise<{ total: number }> {
    let total = 0;
    for await (const batch of (ctx as CheckpointContext).batches(items)) {
      total += batch.items.reduce((sum, item) => sum + item, 0);
    }
    return { total };
  }
}

/** Marks the first item of every batch: its output depends on where batches start. */
@Injectable()
class BatchShaped {
  @Checkpointed({ key: (key: string) => key, batchSize: 50, transactional: true })
  async run(_key: string, @CheckpointCtx() ctx?: CheckpointContext): Promise<number> {
    for await (const batch of (ctx as CheckpointContext).batches(items)) {
      await batch.manager.insert(
        Decision,
        batch.items.map((item, i) => ({
          runId: RUN_ID,
          item,
          verdict: i === 0 ? ('include' as const) : ('exclude' as const),
          attempt: 1,
        })),
      );
    }
    return items.length;
  }
}

let app: TestingModule;
let schema = '';
const decisions = () =>
  app
    .get(DataSource)
    .query<Array<{ item: number; verdict: string }>>('SELECT item, verdict FROM decision');

before(async () => {
  app = await Test.createTestingModule({
    imports: [CheckpointTestingModule.forRoot({ entities: [Decision] })],
    providers: [ScreeningService, OutsideWrites, RunningTotal, BatchShaped],
  }).compile();
  await app.init();
  schema =
    (
      await app
        .get(DataSource)
        .query<Array<{ schema: string }>>('SELECT current_schema() AS schema')
    )[0]?.schema ?? '';
});

after(async () => {
  await app.close();
  // The testing module dropped its schemas at close().
  const left = await sql(`SELECT 1 FROM pg_namespace WHERE nspname LIKE $1`, [`${schema}%`]);
  assert.equal(left.length, 0, `schemas ${schema}* were left behind`);
});

describe('nestjs-checkpoint/testing', () => {
  beforeEach(() => app.get(DataSource).query('DELETE FROM decision'));

  it('the demo screening service gives the same result and rows with 5 random interruptions', async () => {
    const runs = app.get(CheckpointRuns);
    const started = performance.now();
    const report = await app.get(CheckpointTesting).assertResumable(
      async () => {
        const run = await runs.start(SCREENING_QUEUE, {
          id: RUN_ID,
          items,
          directThreshold: items.length,
        });
        return run.result;
      },
      { interruptions: 5, snapshot: decisions },
    );
    const ms = performance.now() - started;
    assert.deepEqual(report.result, { screened: 500 });
    assert.equal(report.interruptions.length, 5);
    assert.equal(report.items, 500);
    // Each interruption really ended an attempt: the key took 6 attempts.
    const [row] = await app
      .get(DataSource)
      .query<Array<{ attempt: number }>>('SELECT attempt FROM checkpoint WHERE key LIKE $1', [
        `${SCREENING_QUEUE}:%`,
      ]);
    assert.equal(row?.attempt, 6);
    process.stdout.write(`# screening, 500 items, 5 interruptions: ${ms.toFixed(0)} ms\n`);
  });

  it('catches a handler that writes outside batch.manager', async () => {
    await assert.rejects(
      app.get(CheckpointTesting).assertResumable(() => app.get(OutsideWrites).run('outside'), {
        interruptions: [{ atItem: 120, phase: 'before-commit' }],
        snapshot: decisions,
      }),
      (error: unknown) => {
        assert.ok(error instanceof CheckpointNotResumableError, String((error as Error).stack));
        assert.match(error.message, /50 item\(s\) differ \(by item\): 100, 101, 102/);
        assert.match(error.message, /item 100: uninterrupted 1 row\(s\).*interrupted 2 row\(s\)/);
        assert.match(
          error.message,
          /first differs after interruption 1: "outside" before the commit of items 100-149/,
        );
        assert.deepEqual(error.items, items.slice(100, 150).map(String));
        return true;
      },
    );
  });

  it('catches a running total kept in memory', async () => {
    await assert.rejects(
      app.get(CheckpointTesting).assertResumable(() => app.get(RunningTotal).run('total'), {
        interruptions: [{ atItem: 200, phase: 'after-commit' }],
      }),
      (error: unknown) => {
        assert.ok(error instanceof CheckpointNotResumableError, String((error as Error).stack));
        assert.match(
          error.message,
          /result: uninterrupted \{"total":124750\}, interrupted \{"total":\d+\}/,
        );
        // Only items 250-499 counted: the resumed attempt started its total from zero.
        assert.match(error.message, /interrupted \{"total":93625\}/);
        assert.match(
          error.message,
          /first differs after interruption 1: "total" after the commit of items 200-249/,
        );
        assert.equal(error.interruption?.number, 1);
        return true;
      },
    );
  });

  it('catches output that depends on the batch size', async () => {
    await assert.rejects(
      app.get(CheckpointTesting).assertResumable(() => app.get(BatchShaped).run('shaped'), {
        interruptions: [
          { atItem: 60, phase: 'after-commit' },
          { atItem: 300, phase: 'after-commit' },
        ],
        snapshot: decisions,
      }),
      (error: unknown) => {
        assert.ok(error instanceof CheckpointNotResumableError, String((error as Error).stack));
        assert.match(error.message, /item\(s\) differ \(by item\)/);
        assert.match(
          error.message,
          /uninterrupted 1 row\(s\) \{"item":\d+,"verdict":"(include|exclude)"\}; interrupted 1 row\(s\) \{"item":\d+,"verdict":"(include|exclude)"\}/,
        );
        assert.match(
          error.message,
          /first differs after interruption 1: "shaped" after the commit of items 50-99/,
        );
        return true;
      },
    );
  });

  it('drain() runs every chunk of a queued run to completion, also when interrupted', async () => {
    const runs = app.get(CheckpointRuns);
    const testing = app.get(CheckpointTesting);
    const id = '9b2e4f60-1c3d-4a5b-8e7f-0a1b2c3d4e5f';
    const report = await testing.assertResumable(
      async () => {
        await runs.start(SCREENING_QUEUE, { id, items, chunkSize: 100, directThreshold: 0 });
        const drained = await testing.drain(SCREENING_QUEUE);
        const run = await runs.get(id);
        return { drained, state: run?.state, completed: run?.chunks.completed };
      },
      { interruptions: 4, seed: 3, snapshot: decisions },
    );
    assert.deepEqual(report.result, {
      drained: { completed: 5, failed: 0 },
      state: 'completed',
      completed: 5,
    });
    assert.equal(report.interruptions.length, 4);
    assert.equal((await decisions()).length, 500);
  });
});
