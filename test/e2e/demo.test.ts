// The newcomer's path: the demo, in a short mode against the test database, crashes itself half
// way, then a second run resumes and finishes with every item screened exactly once.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DATABASE_URL, dropSchema, uniqueSchema } from '../support/database.js';

const schema = uniqueSchema('demo');
const demo = fileURLToPath(new URL('../../examples/demo.js', import.meta.url));

after(async () => {
  await dropSchema(schema);
  await dropSchema(`${schema}_boss`);
});

function runDemo(...args: string[]) {
  const result = spawnSync(
    process.execPath,
    [demo, '--items', '2000', '--chunks', '2', '--item-ms', '1', '--schema', schema, ...args],
    {
      env: { ...process.env, NODE_TEST_CONTEXT: undefined, DATABASE_URL },
      encoding: 'utf8',
      timeout: 120_000,
    },
  );
  return { ...result, output: `${result.stdout}${result.stderr}` };
}

it('crashes itself half way, then resumes and screens every item exactly once', () => {
  const crashed = runDemo('--crash-at', '50');
  assert.equal(crashed.signal, 'SIGKILL', crashed.output);
  assert.match(crashed.output, /Starting run \w+: 2,000 items in 2 pg-boss jobs/);
  assert.match(crashed.output, /Simulating a hard crash at \d+%: SIGKILL\./);

  const resumed = runDemo('--workers', '2');
  assert.equal(resumed.status, 0, resumed.output);
  const resumedAt = /Resuming run \w+ at item ([\d,]+) of 2,000/.exec(resumed.output);
  assert.ok(resumedAt, resumed.output);
  const item = Number(resumedAt[1]?.replace(/,/g, ''));
  assert.ok(item >= 1000 && item < 2000, `resumed at ${item}`);
  assert.match(resumed.output, /Completed run \w+: 2,000 items/);
  assert.match(
    resumed.output,
    /2,000 decision rows for 2,000 items: 0 duplicates, 0 missing\. Every item was screened exactly once\./,
  );
});
