// The test bed of the pg-boss worker tests: a schema with the job effect table, a pg-boss schema
// beside it with a sender of its own, and worker child processes of one fixture. Everything a
// test file set up is killed and dropped when the file ends (cleanUpAfterAll).
import { after } from 'node:test';
import { PgBoss } from 'pg-boss';
import { createJobEffectTable } from '../fixtures/queue-job.js';
import { DATABASE_URL, dropSchema, sql, uniqueSchema } from './database.js';
import { Child } from './process.js';

const cleanups: Array<() => Promise<void>> = [];

/** Kills every worker and drops the schemas when the test file ends. */
export function cleanUpAfterAll(): void {
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });
}

/**
 * A pg-boss on `<schema>_boss` for a test's own sends and reads: no supervision (the workers
 * under test do their own), a small pool, and errors left to the assertions.
 */
export async function startSender(schema: string, url = DATABASE_URL): Promise<PgBoss> {
  const boss = new PgBoss({
    connectionString: url,
    schema: `${schema}_boss`,
    supervise: false,
    max: 2,
  });
  boss.on('error', () => undefined);
  await boss.start();
  return boss;
}

/**
 * A fresh schema and pg-boss for one test; `startWorker` starts a child of `fixture` (a file of
 * test/fixtures) on them, with `env` added to the fixture's environment.
 */
export async function workerBed(prefix: string, fixture: string, env: Record<string, string> = {}) {
  const schema = uniqueSchema(prefix);
  await sql(`CREATE SCHEMA "${schema}"`);
  await sql(createJobEffectTable(schema));
  const boss = await startSender(schema);
  const workers = new Set<Child>();
  const startWorker = (extra: Record<string, string> = {}) => {
    const child = Child.start(fixture, { SCHEMA: schema, JOB_EVENTS: '1', ...env, ...extra });
    workers.add(child);
    return child;
  };
  cleanups.push(async () => {
    // A worker a test froze (SIGSTOP) must run again to die.
    for (const child of workers) child.process.kill('SIGCONT');
    await Promise.all([...workers].map((child) => child.kill('SIGKILL')));
    await boss.stop({ graceful: false });
    await dropSchema(schema);
    await dropSchema(`${schema}_boss`);
  });
  return { schema, boss, startWorker };
}
