// The same tests that pass direct, run again through a real PgBouncer in transaction pooling with
// its server connections recycled every 2 s: every process of them (the test's own and its
// fixtures) reaches PostgreSQL through the pooler (DATABASE_URL) with the module's connection
// option (CHECKPOINT_OPTIONS, see test/support/app.ts): the item-failure replay under SIGKILL,
// with a direct URL and without one.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DATABASE_URL } from '../support/database.js';
import { PgBouncer } from '../support/pgbouncer.js';

const SUITES = ['failing-items-crash.test.js'];
let bouncer: PgBouncer;

before(async () => {
  bouncer = await PgBouncer.recycling(20);
});

after(async () => {
  await bouncer?.stop();
});

/** Runs compiled test files in a node --test child with `env`; resolves with its output. */
function runSuites(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const files = SUITES.map((file) => fileURLToPath(new URL(file, import.meta.url)));
  const child = spawn(process.execPath, ['--test', '--test-concurrency=1', ...files], {
    // NODE_TEST_CONTEXT would make the child report to this runner instead of running its own.
    env: { ...process.env, NODE_TEST_CONTEXT: undefined, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, output })));
}

/** Runs the suites with `options` as the module's options in every process; asserts they pass. */
async function passes(t: TestContext, options: object): Promise<void> {
  const { code, output } = await runSuites({
    DATABASE_URL: bouncer.url,
    CHECKPOINT_OPTIONS: JSON.stringify(options),
  });
  for (const line of output.split('\n').filter((one) => /^\s*# (?!Subtest)/.test(one)))
    t.diagnostic(line.trim());
  assert.equal(code, 0, output.slice(-6000));
  assert.match(output, /^# pass 1$/m);
  assert.match(output, /^# fail 0$/m);
}

describe('failing items through a transaction pooler', () => {
  it('with a direct URL for the lease session and LISTEN: the suite passes as it does direct', async (t: TestContext) => {
    await passes(t, { connection: { pooling: 'transaction', directUrl: DATABASE_URL } });
  });

  it('without a direct URL (a killed owner ends by lease expiry, 3 s here): the suite passes as it does direct', async (t: TestContext) => {
    await passes(t, { connection: { pooling: 'transaction' }, leaseTtlMs: 3000 });
  });
});
