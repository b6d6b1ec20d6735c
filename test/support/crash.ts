// A checkpointed batch job (test/fixtures/batch-worker.ts) killed with SIGKILL again and again
// (inside a batch, between batches, after the advance but before its commit, at random times),
// and restarted each time.
import assert from 'node:assert/strict';
import { after } from 'node:test';
import { createEffectTable, sleep } from '../fixtures/batch-job.js';
import { dropSchema, sql, uniqueSchema } from './database.js';
import { Child } from './process.js';

export const ITEMS = 5000;
export const BATCH = 50;
const schemas: string[] = [];

/** Drops the schemas of this file's crash runs when it ends. */
export function dropCrashSchemasAfterAll(): void {
  after(async () => {
    for (const schema of schemas) await dropSchema(schema);
  });
}

export type Phase = 'inside' | 'between' | 'before-commit' | 'random';

/**
 * Crashes the job `kills` times at the given phases in turn, then lets it finish; `env` goes to
 * every child (another DATABASE_URL, CHECKPOINT_OPTIONS).
 */
export async function crashAndResume(
  mode: 'transactional' | 'plain',
  phases: Phase[],
  kills: number,
  env: Record<string, string> = {},
) {
  const schema = uniqueSchema(`crash_${mode}`);
  schemas.push(schema);
  await sql(`CREATE SCHEMA "${schema}"`);
  await sql(createEffectTable(schema));
  const childEnv = {
    ...env,
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
    if (round > 0) await untilClaimable(schema, 'job');
    const resumed = Number(row?.current_index ?? 0);
    const target = Math.floor(resumed / BATCH) + 1 + Math.floor(Math.random() * 3);
    const child = Child.start('batch-worker', {
      ...childEnv,
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
    if (exit.signal !== 'SIGKILL') {
      assert.fail(
        `round ${round} (${phase}) was not killed; stderr: ${child.stderr}\n` +
          `the key's owner now: ${JSON.stringify(await ownerNow(schema, 'job'))}`,
      );
    }
  }
  await untilClaimable(schema, 'job');
  const last = Child.start('batch-worker', childEnv);
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

/**
 * What the database says of the key's recorded owner: its lease, whether its backend is there,
 * and the advisory locks that backend holds (a failed round's message says why a claim lost).
 */
async function ownerNow(schema: string, key: string) {
  return sql(
    `SELECT c.owner_pid, c.owner_started::text, c.running_epoch, c.control,
            c.lease_expires_at > clock_timestamp() AS lease_live,
            (SELECT a.backend_start::text FROM pg_stat_activity a WHERE a.pid = c.owner_pid)
              AS backend_start,
            (SELECT a.state FROM pg_stat_activity a WHERE a.pid = c.owner_pid) AS backend_state,
            (SELECT array_agg(l.classid || ':' || l.objid || ':' || l.objsubid)
               FROM pg_locks l WHERE l.pid = c.owner_pid AND l.locktype = 'advisory')
              AS advisory_locks
       FROM "${schema}".checkpoint c WHERE c.key = $1`,
    [key],
  ).catch((error: unknown) => String(error));
}

/**
 * Waits until the killed owner's key can be taken. An owner with a lease session (owner_pid set)
 * is seen dead at once, so this returns at once; one without (a transaction pooler and no direct
 * URL) is known dead only when its lease expires, and a restart before that is rightly refused.
 */
export async function untilClaimable(schema: string, key: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const [row] = await sql<{ waiting: boolean }>(
      `SELECT owner_pid IS NULL AND lease_expires_at > clock_timestamp() AS waiting
         FROM "${schema}".checkpoint WHERE key = $1`,
      [key],
    );
    if (row?.waiting !== true) return;
    assert.ok(Date.now() < deadline, "the dead owner's lease never expired");
    await sleep(50);
  }
}
