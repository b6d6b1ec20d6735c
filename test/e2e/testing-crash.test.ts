// The testing entry point's interruptions agree with real crashes: the same handler, crashed at
// the same three boundaries, once by SIGKILLed child processes (each resumed by the next one)
// and once by interruptions injected in this process, leaves the same rows: the handler's
// effects (item and attempt) and the checkpoint row, but for the columns that name the process
// or the time (owner, its session, lease expiry, timestamps).
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Test } from '@nestjs/testing';
import { DataSource } from 'typeorm';
import { CheckpointTesting, CheckpointTestingModule } from '../../src/testing/index.js';
import { Effect, TransactionalJob, type CrashPlan } from '../fixtures/batch-job.js';
import { dropSchema, sql, uniqueSchema } from '../support/database.js';
import { Child } from '../support/process.js';

const KEY = 'crash-agreement';
const ITEMS = 1000;
/** Batches of 50: each crash point as the fixture's plan, and as an injected interruption. */
const CRASHES: Array<{ plan: CrashPlan; atItem: number; phase: 'before-commit' | 'after-commit' }> =
  [
    // In the body, after its inserts: the batch's transaction is open.
    { plan: { phase: 'inside', batch: 3 }, atItem: 150, phase: 'before-commit' },
    // At the start of batch 7: batch 6 committed.
    { plan: { phase: 'between', batch: 7 }, atItem: 300, phase: 'after-commit' },
    // At the batch's COMMIT, after its advance.
    { plan: { phase: 'before-commit', batch: 12 }, atItem: 600, phase: 'before-commit' },
  ];

const IGNORED = [
  'owner',
  'owner_pid',
  'owner_started',
  'lease_expires_at',
  'attempt_started_at',
  'created_at',
  'updated_at',
];
/** Reads through `query`: the testing module may run on its own (embedded) PostgreSQL. */
type Query = <R extends Record<string, unknown>>(text: string, values?: unknown[]) => Promise<R[]>;

const rowsOf = (query: Query, schema: string) =>
  Promise.all([
    query<{ row: Record<string, unknown> }>(
      `SELECT to_jsonb(c) - $1::text[] AS row FROM "${schema}".checkpoint c`,
      [IGNORED],
    ),
    query<{ item: number; attempt: number }>(
      `SELECT item, attempt FROM "${schema}".effect ORDER BY item, attempt`,
    ),
  ]);

const killedSchema = uniqueSchema('killed');
before(() => sql(`CREATE SCHEMA "${killedSchema}"`));
after(() => dropSchema(killedSchema));

describe('injected interruptions and real crashes', () => {
  it('leave the same database for the same handler and crash points', async () => {
    // Real crashes: one child process per crash, each resuming where the last one died.
    for (const crash of [...CRASHES.map((c) => c.plan), { phase: 'none', batch: -1 }]) {
      const child = Child.start('batch-worker', {
        SCHEMA: killedSchema,
        KEY,
        ITEMS: String(ITEMS),
        CRASH_PHASE: crash.phase,
        CRASH_BATCH: String(crash.batch),
        BATCH_DELAY_MS: '0',
      });
      const exit = await child.exited;
      if (crash.phase === 'none') {
        assert.equal(exit.code, 0, child.stderr);
        assert.ok(child.lines.includes('completed'));
      } else {
        assert.equal(exit.signal, 'SIGKILL', `${crash.phase} ${crash.batch}: ${child.stderr}`);
      }
    }

    // Injected: the same handler in a testing module, the same points, in this process.
    const app = await Test.createTestingModule({
      imports: [CheckpointTestingModule.forRoot({ entities: [Effect] })],
      providers: [TransactionalJob],
    }).compile();
    await app.init();
    try {
      const job = app.get(TransactionalJob);
      job.batchDelayMs = 0;
      const items = Array.from({ length: ITEMS }, (_, i) => i);
      const { result, interruptions } = await app.get(CheckpointTesting).interrupt(
        () => job.run({ key: KEY, items }),
        CRASHES.map(({ atItem, phase }) => ({ atItem, phase })),
      );
      assert.deepEqual(result, { items: ITEMS });
      assert.deepEqual(
        interruptions.map((fired) => [fired.startIndex, fired.phase]),
        [
          [150, 'before-commit'],
          [300, 'after-commit'],
          [600, 'before-commit'],
        ],
      );
      const [injectedSchema] = await app
        .get(DataSource)
        .query<Array<{ schema: string }>>('SELECT current_schema() AS schema');
      const [killedRows, killedEffects] = await rowsOf(sql, killedSchema);
      const injectedQuery: Query = (text, values) => app.get(DataSource).query(text, values);
      const [injectedRows, injectedEffects] = await rowsOf(
        injectedQuery,
        injectedSchema?.schema ?? '',
      );

      assert.equal(killedEffects.length, ITEMS);
      assert.deepEqual(injectedEffects, killedEffects);
      // Attempts 1 to 4: three crashes, each item written once, by the attempt that committed it.
      assert.deepEqual([...new Set(killedEffects.map((effect) => effect.attempt))], [1, 2, 3, 4]);
      assert.equal(killedRows.length, 1);
      assert.deepEqual(injectedRows, killedRows);
      assert.equal(killedRows[0]?.row.state, 'completed');
    } finally {
      await app.close();
    }
  });
});
