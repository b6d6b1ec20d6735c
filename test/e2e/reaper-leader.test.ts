// One reaper looks for dead owners at a time (issue 20, part 3): the other processes only ask
// whether the leader is still there, and one of them leads at its next tick once the leader's
// lease session is gone, not after the lead's time. Real processes, real pg-boss: the leader
// that is killed is the worker that held the job, and the job still goes back at once.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { LEAD_SECONDS } from '../../src/ownership/checkpoint-orphans.js';
import { QUEUE } from '../fixtures/queue-job.js';
import { effectCounts } from '../support/borrowed.js';
import { sql } from '../support/database.js';
import type { Child } from '../support/process.js';
import { waitUntil } from '../support/wait.js';
import { cleanUpAfterAll, workerBed } from '../support/workers.js';

cleanUpAfterAll();

/** How long a lead lasts without being asked again. */
const LEAD_MS = LEAD_SECONDS * 1000;
/** A job of 20,000 items in batches of 50, 30 ms each: 12 s, longer than the test takes to kill. */
const ITEMS = 20_000;

interface Lead {
  process: string;
  until: Date;
}

async function lead(schema: string): Promise<Lead | undefined> {
  const [row] = await sql<Lead>(`SELECT process, until FROM "${schema}".reaper`);
  return row;
}

/** Whether `lead` names a reaper of `child` (`host:pid:id`). */
const ledBy = (row: Lead | undefined, child: Child) =>
  row !== undefined && row.process.split(':')[1] === String(child.process.pid);

/** Waits until `child` leads; its lead then. */
function ledAt(schema: string, child: Child): Promise<Lead> {
  return waitUntil(
    async () => {
      const row = await lead(schema);
      return ledBy(row, child) ? row : undefined;
    },
    30_000,
    `${child.process.pid} leading`,
  );
}

/**
 * Over four renewals of `child`'s lead after `from` (two seconds: the other process asks four
 * times meanwhile), the lead never moves.
 */
async function keepsLead(schema: string, child: Child, from: Lead | undefined): Promise<void> {
  assert.ok(ledBy(from, child), `${child.process.pid} leads (${from?.process})`);
  let until = from?.until.getTime() ?? 0;
  for (let renewal = 0; renewal < 4; renewal++) {
    const row = await waitUntil(
      async () => {
        const now = await lead(schema);
        assert.ok(ledBy(now, child), `${child.process.pid} keeps the lead (${now?.process})`);
        return now !== undefined && now.until.getTime() > until ? now : undefined;
      },
      30_000,
      `a renewal of ${child.process.pid}'s lead`,
    );
    until = row.until.getTime();
  }
}

describe('the reaper leader', () => {
  it('one process leads; killed with the job it held, another leads at once and hands the job back', async (t: TestContext) => {
    const { schema, boss, startWorker } = await workerBed('reaperlead', 'queue-worker');
    const first = startWorker();
    await first.waitFor((line) => line.startsWith('ready'));
    await ledAt(schema, first);
    const id = await boss.send(QUEUE, { count: ITEMS, batchDelayMs: 30 });
    assert.ok(id);
    await first.waitFor((line) => line.startsWith(`batch ${id}`));
    const second = startWorker();
    await second.waitFor((line) => line.startsWith('ready'));
    // The second asks at each tick and finds the first alive: the lead stays where it was.
    await keepsLead(schema, first, await lead(schema));

    assert.ok(!first.lines.includes(`done ${id}`), 'the job runs on when its worker is killed');
    await first.kill('SIGKILL');
    // The first cannot renew any more: this is its last lead, unless the second took over already.
    const last = await lead(schema);
    const taken = await ledAt(schema, second);
    if (last !== undefined && ledBy(last, first)) {
      const takenAt = taken.until.getTime() - LEAD_MS;
      t.diagnostic(
        `the lead passed ${last.until.getTime() - takenAt} ms before the dead one's ran out`,
      );
      assert.ok(
        takenAt < last.until.getTime(),
        'taken because the session was gone, not by expiry',
      );
    }
    // The new leader's reaper handed the dead worker's job back; the job completes, every item once.
    await second.waitFor((line) => line.includes(`job ${id} of "${QUEUE}" lost its worker`));
    await second.waitFor((line) => line === `done ${id}`);
    assert.deepEqual(await effectCounts(schema, id), { rows: ITEMS, distinct: ITEMS });
    await second.kill('SIGTERM');
  });

  it('a frozen leader is replaced once its lead ran out, and does not take it back when it wakes', async () => {
    const { schema, startWorker } = await workerBed('reaperfreeze', 'queue-worker');
    const first = startWorker();
    await first.waitFor((line) => line.startsWith('ready'));
    await ledAt(schema, first);
    const second = startWorker();
    await second.waitFor((line) => line.startsWith('ready'));
    first.process.kill('SIGSTOP');
    const frozenLead = await lead(schema);
    const taken = await ledAt(schema, second);
    // Its session lived on: the lead passed by its time only.
    assert.ok(frozenLead !== undefined && ledBy(frozenLead, first));
    assert.ok(taken.until.getTime() - LEAD_MS >= frozenLead.until.getTime(), 'taken by expiry');
    first.process.kill('SIGCONT');
    // Awake, the first asks again at its next ticks and finds the second's lead.
    await keepsLead(schema, second, taken);
    await Promise.all([first.kill('SIGTERM'), second.kill('SIGTERM')]);
  });
});
