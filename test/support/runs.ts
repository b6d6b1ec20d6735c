// The test bed of the runs tests that use worker processes: a schema with the run fixture's
// tables, a pg-boss schema beside it, worker processes of the run fixture, and an application
// that starts runs. Everything is removed when the test file ends.
import { after } from 'node:test';
import { CheckpointRuns, type CheckpointModuleOptions } from '../../src/index.js';
import { createRunTables } from '../fixtures/run-job.js';
import { createTestApp } from './app.js';
import { DATABASE_URL, dropSchema, sql, uniqueSchema } from './database.js';
import { Child } from './process.js';

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
export const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Call once at the top of a test file; `setUp` gives each scenario its own schema. */
export function runsTestBed() {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  /**
   * `app` reaches the database another way than the workers' default (through a pooler, with
   * the module's connection option).
   */
  async function setUp(
    prefix: string,
    workerEnv: Record<string, string>,
    app: { url?: string; checkpoint?: Partial<CheckpointModuleOptions> } = {},
  ) {
    const schema = uniqueSchema(prefix);
    await sql(`CREATE SCHEMA "${schema}"`);
    for (const statement of createRunTables(schema)) await sql(statement);
    const children = new Set<Child>();
    const start = (fixture: string, env: Record<string, string> = {}) => {
      const child = Child.start(fixture, {
        SCHEMA: schema,
        JOB_EVENTS: '1',
        ...workerEnv,
        ...env,
      });
      children.add(child);
      return child;
    };
    const application = await createTestApp({
      schema,
      url: app.url,
      checkpoint: {
        ...app.checkpoint,
        boss: {
          connectionString: app.url ?? DATABASE_URL,
          schema: `${schema}_boss`,
          max: 2,
          supervise: false,
        },
      },
    });
    cleanups.push(async () => {
      await application.close();
      await Promise.all([...children].map((child) => child.kill('SIGKILL')));
      await dropSchema(schema);
      await dropSchema(`${schema}_boss`);
    });
    return { schema, start, app: application, runs: application.get(CheckpointRuns) };
  }

  return { setUp };
}
