// Items that fail (issue 12) under real crashes: the 10,000-item run (1% refused, 2%
// rate-limited once) in a child process killed with SIGKILL again and again, at random times,
// right after a replayed item was seen, and from inside a replayed item's transaction; then
// finished. The outcome must be the same as without crashes.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createEffectTable, sleep } from '../fixtures/batch-job.js';
import { dropSchema, sql, uniqueSchema } from '../support/database.js';
import { untilClaimable } from '../support/crash.js';
import { ITEMS, assertScreened, runWorker } from '../support/failing-items.js';
import { Child } from '../support/process.js';

const schemas: string[] = [];
const key = 'screening';

after(async () => {
  for (const schema of schemas) await dropSchema(schema);
});

async function freshSchema(prefix: string): Promise<string> {
  const schema = uniqueSchema(prefix);
  schemas.push(schema);
  await sql(`CREATE SCHEMA "${schema}"`);
  await sql(createEffectTable(schema));
  return schema;
}

describe('items that fail, under SIGKILL', () => {
  it('the same run under random SIGKILLs, several inside the item-by-item replay: same result', async (t) => {
    const killSchema = await freshSchema('items_kill');
    const env = { SCHEMA: killSchema, KEY: key, ITEMS: String(ITEMS) };
    let kills = 0;
    let duringReplay = 0;
    for (let round = 0; round < 7; round++) {
      // Every third round the process kills itself inside a replayed item (effect written, not
      // committed); the others are killed by this process, at a random time or right after a
      // replayed item was seen.
      const selfKill = round % 3 === 0 ? 1 + Math.floor(Math.random() * 60) : 0;
      // Through a transaction pooler without a direct URL the killed owner ends by lease expiry.
      if (round > 0) await untilClaimable(killSchema, key);
      const child = Child.start('failing-items-worker', { ...env, CRASH_SCAN: String(selfKill) });
      await child.waitFor((line) => line.startsWith('start '), 60_000);
      if (selfKill === 0 && round % 3 === 1) {
        await sleep(300 + Math.random() * 2500);
        child.process.kill('SIGKILL');
      } else if (selfKill === 0) {
        await child.waitFor((line) => line.startsWith('scan '), 60_000).catch(() => undefined);
        await sleep(Math.random() * 15);
        child.process.kill('SIGKILL');
      }
      const exit = await child.exited;
      if (exit.code === 0) break;
      assert.equal(exit.signal, 'SIGKILL', `round ${round}: ${child.stderr}`);
      kills += 1;
      const last = child.lines.at(-1) ?? '';
      if (selfKill > 0 || last.startsWith('scan ')) duringReplay += 1;
    }
    await untilClaimable(killSchema, key);
    await runWorker(env);
    t.diagnostic(`  ${kills} SIGKILLs, ${duringReplay} of them inside the item-by-item replay`);
    assert.ok(kills >= 5, `at least five kills landed (${kills})`);
    assert.ok(duringReplay >= 3, `at least three kills inside a replay (${duringReplay})`);
    await assertScreened(killSchema, key);
  });
});
