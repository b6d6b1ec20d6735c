// @Checkpointed() under real crashes: a child process runs a 5,000-item job (batch 50) and is
// killed with SIGKILL again and again (inside a batch, between batches, after the advance but
// before its commit, and at random times), then restarted each time.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createEffectTable, sleep } from '../fixtures/batch-job.js';
import { dropSchema, sql, uniqueSchema } from '../support/database.js';
import { Child } from '../support/process.js';

const ITEMS = 5000;
const BATCH = 50;
const schemas: string[] = [];

after(async () => {
  for (const schema of schemas) await dropSchema(schema);
});

type Phase = 'inside' | 'between' | 'before-commit' | 'random';

/** Crashes the job `kills` times at the given phases in turn, then lets it finish. */
async function crashAndResume(mode: 'transactional' | 'plain', phases: Phase[], kills: number) {
  const schema = uniqueSchema(`crash_${mode}`);
  schemas.push(schema);
  await sql(`CREATE SCHEMA "${schema}"`);
  await sql(createEffectTable(schema));
  const env = {
    SCHEMA: schema,
    KEY: 'job',
    ITEMS: String(ITEMS),
    MODE: mode,
    BATCH_DELAY_MS: '10',
  };
  const resumePoints: number[] = [];
  for (let round = 0; round < kills; round++) {
    const phase = phases[round % phases.length];
    // The first child creates the checkpoint table; later rounds aim past the committed point.
    const [row] =
      round === 0
        ? []
        : await sql<{ current_index: string }>(
            `SELECT current_index FROM "${schema}".checkpoint WHERE key = 'job'`,
          );
    const resumed = Number(row?.current_index ?? 0);
    const target = Math.floor(resumed / BATCH) + 1 + Math.floor(Math.random() * 3);
    const child = Child.start('batch-worker', {
      ...env,
      CRASH_PHASE: phase === 'random' ? 'none' : phase,
      CRASH_BATCH: String(target),
    });
    const start = await child.waitFor((line) => line.startsWith('start '));
    resumePoints.push(Number(start.split(' ')[1]));
    if (phase === 'random') {
      // A kill before the claim would be no attempt at all: wait until this round has claimed.
      for (;;) {
        const claimed = await sql<{ attempt: number }>(
          `SELECT attempt FROM "${schema}".checkpoint WHERE key = 'job'`,
        ).catch(() => []);
        if ((claimed[0]?.attempt ?? 0) > round) break;
        await sleep(5);
      }
      await sleep(20 + Math.random() * 100);
      child.process.kill('SIGKILL');
    }
    const exit = await child.exited;
    assert.equal(
      exit.signal,
      'SIGKILL',
      `round ${round} (${phase}) was killed; stderr: ${child.stderr}`,
    );
  }
  const last = Child.start('batch-worker', env);
  await last.waitFor((line) => line === 'completed', 60_000);
  const exit = await last.exited;
  assert.equal(exit.code, 0, last.stderr);

  const rows = await sql<{ state: string; current_index: string; attempt: number }>(
    `SELECT state, current_index, attempt FROM "${schema}".checkpoint WHERE key = 'job'`,
  );
  assert.equal(rows[0]?.state, 'completed');
  assert.equal(Number(rows[0]?.current_index), ITEMS);
  assert.equal(rows[0]?.attempt, kills + 1);
  // Each restart resumed at or after where the previous one did: nothing committed was lost.
  for (let i = 1; i < resumePoints.length; i++) {
    assert.ok(
      (resumePoints[i] ?? 0) >= (resumePoints[i - 1] ?? 0),
      `resume points ${resumePoints.join(', ')}`,
    );
  }
  assert.ok((resumePoints.at(-1) ?? 0) > 0, 'the job made progress between crashes');
  return schema;
}

describe('@Checkpointed() across SIGKILLs', () => {
  it('transactional: every item has exactly one effect row after 12 crashes', async () => {
    const schema = await crashAndResume(
      'transactional',
      ['inside', 'between', 'before-commit', 'random'],
      12,
    );
    const [counts] = await sql<{ items: number; rows: number; max: number }>(
      `SELECT count(*)::int AS items, sum(n)::int AS rows, max(n)::int AS max
         FROM (SELECT item, count(*) AS n FROM "${schema}".effect GROUP BY item) per_item`,
    );
    assert.deepEqual(counts, { items: ITEMS, rows: ITEMS, max: 1 });
  });

  it('without transactions: no item is lost, and each crash redoes at most its own batch', async () => {
    const kills = 10;
    const schema = await crashAndResume('plain', ['inside', 'between', 'random'], kills);
    const [counts] = await sql<{ items: number; rows: number }>(
      `SELECT count(DISTINCT item)::int AS items, count(*)::int AS rows FROM "${schema}".effect`,
    );
    assert.equal(counts?.items, ITEMS, 'every item has an effect');
    // Items done twice: by the attempt that crashed and again by the next one.
    const redone = await sql<{ attempt: number; n: number }>(
      `SELECT later.attempt, count(*)::int AS n
         FROM "${schema}".effect later
         JOIN "${schema}".effect earlier ON earlier.item = later.item AND earlier.attempt < later.attempt
        GROUP BY later.attempt`,
    );
    for (const { attempt, n } of redone) {
      assert.ok(n <= BATCH, `attempt ${attempt} redid ${n} items, more than one batch`);
    }
    assert.ok((counts?.rows ?? 0) - ITEMS <= kills * BATCH);
  });
});
