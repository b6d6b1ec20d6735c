// The library behind a real PgBouncer (Debian's 1.18), in session and in transaction pooling, the
// latter with its server connections recycled every few seconds (server_lifetime), with and
// without a direct URL: the SIGKILL exactly-once runs, and the set-up each process reports.
import assert from 'node:assert/strict';
import type { LoggerService } from '@nestjs/common';
import pg from 'pg';
import { firstValueFrom, timeout } from 'rxjs';
import { after, before, describe, it, type TestContext } from 'node:test';
import { CheckpointLeaseConflictError, CheckpointService } from '../../src/index.js';
import { createTestApp } from '../support/app.js';
import { ITEMS, crashAndResume, dropCrashSchemasAfterAll } from '../support/crash.js';
import { DATABASE_URL, dropSchema, sql, uniqueSchema } from '../support/database.js';
import { PgBouncer } from '../support/pgbouncer.js';
import { Child } from '../support/process.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

dropCrashSchemasAfterAll();

let transaction: PgBouncer;
let session: PgBouncer;

before(async () => {
  transaction = await PgBouncer.recycling(6);
  session = await PgBouncer.start({ poolMode: 'session', poolSize: 12 });
});

after(async () => {
  await transaction?.stop();
  await session?.stop();
});

/** Keeps the application's log lines. */
class Lines implements LoggerService {
  readonly lines: string[] = [];
  log(message: unknown): void {
    this.lines.push(String(message));
  }
  error(): void {}
  warn(): void {}
}

async function exactlyOnce(schema: string): Promise<void> {
  const [counts] = await sql<{ items: number; rows: number; max: number }>(
    `SELECT count(*)::int AS items, sum(n)::int AS rows, max(n)::int AS max
       FROM (SELECT item, count(*) AS n FROM "${schema}".effect GROUP BY item) per_item`,
  );
  assert.deepEqual(counts, { items: ITEMS, rows: ITEMS, max: 1 });
}

describe('connection set-ups', () => {
  it('bootstrap names the set-up it detected, and what it costs', async () => {
    const seen: Record<string, string> = {};
    for (const [name, url] of [
      ['direct', DATABASE_URL],
      ['session', session.url],
      ['transaction', transaction.url],
    ] as const) {
      const schema = uniqueSchema(`pool_detect_${name}`);
      const logger = new Lines();
      const app = await createTestApp({ schema, url, poolSize: 3, loggerService: logger });
      await app.close();
      await dropSchema(schema);
      seen[name] = logger.lines.find((line) => line.startsWith('connection: ')) ?? '(none)';
    }
    assert.match(seen.direct ?? '', /^connection: direct \(detected/);
    assert.match(seen.session ?? '', /^connection: session pooling \(detected/);
    assert.match(
      seen.transaction ?? '',
      /^connection: transaction pooling without a direct URL \(detected.*lease expiry, after up to 30000 ms/,
    );
  });

  it('an unknown pooling, or a direct URL without transaction pooling, stops bootstrap', async () => {
    const schema = uniqueSchema('pool_bad');
    await assert.rejects(
      createTestApp({
        schema,
        checkpoint: { connection: { pooling: 'statement' as 'session' } },
      }),
      /connection.pooling must be 'none', 'session' or 'transaction' \(got "statement"\)/,
    );
    await assert.rejects(
      createTestApp({
        schema,
        checkpoint: { connection: { pooling: 'session', directUrl: DATABASE_URL } },
      }),
      /connection.directUrl is for pooling: 'transaction'/,
    );
    await assert.rejects(
      createTestApp({
        schema,
        checkpoint: {
          connection: { pooling: 'transaction' },
          boss: { connectionString: DATABASE_URL, useListenNotify: true },
        },
      }),
      /boss.useListenNotify cannot work through a transaction pooler/,
    );
    await dropSchema(schema);
  });
});

describe('@Checkpointed() across SIGKILLs behind PgBouncer', () => {
  it('transaction pooling without a direct URL: exactly one effect per item after 4 crashes', async () => {
    const schema = await crashAndResume(
      'transactional',
      ['inside', 'between', 'before-commit'],
      4,
      {
        DATABASE_URL: transaction.url,
        // Without a lease session a dead owner is known by its lease's expiry only.
        CHECKPOINT_OPTIONS: JSON.stringify({
          connection: { pooling: 'transaction' },
          leaseTtlMs: 2000,
        }),
      },
    );
    await exactlyOnce(schema);
  });

  it('transaction pooling with a direct URL: exactly one effect per item after 6 crashes', async () => {
    const schema = await crashAndResume(
      'transactional',
      ['inside', 'between', 'before-commit'],
      6,
      {
        DATABASE_URL: transaction.url,
        CHECKPOINT_OPTIONS: JSON.stringify({
          connection: { pooling: 'transaction', directUrl: DATABASE_URL },
        }),
      },
    );
    await exactlyOnce(schema);
  });

  it('session pooling: a restart takes over at once, exactly one effect per item after 6 crashes', async () => {
    // The default 30 s lease: a restart that had to wait for it would take far longer than the
    // job, and the fixture fails on the lease conflict instead of starting.
    const schema = await crashAndResume(
      'transactional',
      ['inside', 'between', 'before-commit'],
      6,
      {
        DATABASE_URL: session.url,
      },
    );
    await exactlyOnce(schema);
  });
});

/** The set-ups of the takeover and recycling tests: a URL and the module's connection option. */
const setUps = () =>
  [
    { name: 'direct', url: DATABASE_URL, connection: {} },
    { name: 'session pooling', url: session.url, connection: {} },
    {
      name: 'transaction pooling with a direct URL',
      url: transaction.url,
      connection: { pooling: 'transaction', directUrl: DATABASE_URL },
    },
    {
      name: 'transaction pooling without a direct URL',
      url: transaction.url,
      connection: { pooling: 'transaction' },
    },
  ] as const;

describe('ownership behind PgBouncer', () => {
  it('takeover after SIGKILL of the owner, in each set-up (figures)', async (t: TestContext) => {
    const leaseTtlMs = 10_000;
    const figures: string[] = [];
    for (const setUp of setUps()) {
      const schema = uniqueSchema('pool_takeover');
      const options = { connection: setUp.connection, leaseTtlMs };
      const app = await createTestApp({ schema, url: setUp.url, poolSize: 2, checkpoint: options });
      const service = app.get(CheckpointService);
      const holder = Child.start('claim-holder', {
        SCHEMA: schema,
        KEY: 'held',
        DATABASE_URL: setUp.url,
        CHECKPOINT_OPTIONS: JSON.stringify(options),
      });
      await holder.waitFor((line) => line.startsWith('claimed '));
      await assert.rejects(service.claim('held'), CheckpointLeaseConflictError, 'a live owner');
      await holder.kill('SIGKILL');
      const killed = Date.now();
      let refused = 0;
      for (;;) {
        try {
          await service.claim('held');
          break;
        } catch (error) {
          if (!(error instanceof CheckpointLeaseConflictError)) throw error;
          refused += 1;
          if (Date.now() - killed > 3 * leaseTtlMs)
            throw new Error(`${setUp.name}: no takeover`, { cause: error });
          await sleep(20);
        }
      }
      const ms = Date.now() - killed;
      const [row] = await sql<{ attempt: number; epoch: string }>(
        `SELECT attempt, epoch FROM "${schema}".checkpoint WHERE key = 'held'`,
      );
      assert.deepEqual(row, { attempt: 2, epoch: '2' });
      figures.push(`${setUp.name}: ${ms} ms (${refused} claims refused)`);
      if (setUp.name === 'transaction pooling without a direct URL') {
        // No session to see die: the claim waited for the lease to expire.
        assert.ok(refused > 0, `${setUp.name}: refused until the lease expired`);
      } else {
        // The dead owner is seen as dead: no waiting for its lease (10 s) to expire.
        assert.ok(ms < leaseTtlMs, `${setUp.name}: took over after ${ms} ms`);
      }
      await app.close();
      await dropSchema(schema);
    }
    t.diagnostic(`takeover after SIGKILL: ${figures.join('; ')}`);
  });

  it('server connections recycled every 2 s under a held lease: no live owner taken over, fenced or lapsed', async () => {
    for (const setUp of setUps().filter((one) => one.url === transaction.url)) {
      const schema = uniqueSchema('pool_recycle');
      // A short lease: renewed every 667 ms, so the 12 s hold spans many renewals and recyclings.
      const options = { connection: setUp.connection, leaseTtlMs: 2000 };
      const app = await createTestApp({ schema, url: setUp.url, poolSize: 2, checkpoint: options });
      const service = app.get(CheckpointService);
      const holder = Child.start('claim-holder', {
        SCHEMA: schema,
        KEY: 'held',
        DATABASE_URL: setUp.url,
        CHECKPOINT_OPTIONS: JSON.stringify(options),
      });
      await holder.waitFor((line) => line.startsWith('claimed '));
      const first = await serverConnection();
      let refused = 0;
      let taken = 0;
      const until = Date.now() + 12_000;
      while (Date.now() < until) {
        try {
          await service.claim('held');
          taken += 1;
        } catch (error) {
          if (!(error instanceof CheckpointLeaseConflictError)) throw error;
          refused += 1;
        }
        await sleep(200);
      }
      const [row] = await sql<{ attempt: number; epoch: string; state: string; alive: boolean }>(
        `SELECT attempt, epoch, state, lease_expires_at > clock_timestamp() AS alive
           FROM "${schema}".checkpoint WHERE key = 'held'`,
      );
      assert.equal(taken, 0, `${setUp.name}: the live owner was taken over`);
      assert.ok(refused > 30, `${setUp.name}: ${refused} claims refused`);
      assert.deepEqual(row, { attempt: 1, epoch: '1', state: 'running', alive: true });
      const [gone] = await sql<{ n: number }>(
        'SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1',
        [first],
      );
      assert.equal(gone?.n, 0, `${setUp.name}: the pooler recycled its server connections`);
      assert.equal(holder.process.exitCode, null, `the holder lives: ${holder.stderr}`);
      await holder.kill('SIGKILL');
      await app.close();
      await dropSchema(schema);
    }
  });
});

describe('announcements without LISTEN (transaction pooling without a direct URL)', () => {
  it('advances write change rows only while some process watches; claims and ends always', async () => {
    const schema = uniqueSchema('pool_quiet');
    const app = await createTestApp({ schema, url: transaction.url, poolSize: 3 });
    const service = app.get(CheckpointService);
    const rows = async (key: string) =>
      (
        await sql<{ n: number }>(
          `SELECT count(*)::int AS n FROM "${schema}".change
            WHERE channel = 'progress' AND payload = $1`,
          [key],
        )
      )[0]?.n ?? 0;
    /** Waits until `key` has `count` change rows (a flush runs every 100 ms). */
    const recorded = async (key: string, count = 1) => {
      const deadline = Date.now() + 60_000;
      while ((await rows(key)) < count) {
        if (Date.now() > deadline) assert.fail(`no change row for "${key}"`);
        await sleep(50);
      }
    };
    try {
      const key = 'quiet:a';
      const claim = await service.claim(key, { totalItems: 100 });
      await recorded(key);
      // Nobody watches: the advances write no row. A marker claimed after them is recorded in
      // the same flush as them or a later one, so once it is there they would be too.
      for (const currentIndex of [10, 20, 30])
        await service.advance(key, claim.epoch, { currentIndex });
      await service.claim('quiet:marker-1');
      await recorded('quiet:marker-1');
      assert.equal(await rows(key), 1, 'the claim alone');
      // A watcher in this process: an advance is recorded.
      const watching = service.watch(key).subscribe();
      try {
        // Its row is written before watch() first reads, so once a value came it is there.
        await firstValueFrom(service.watch(key).pipe(timeout(60_000)));
        await service.advance(key, claim.epoch, { currentIndex: 40 });
        await recorded(key, 2);
      } finally {
        watching.unsubscribe();
      }
      const deadline = Date.now() + 60_000;
      const watchers = () =>
        sql<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".watcher`);
      while ((await watchers())[0]?.n !== 0) {
        if (Date.now() > deadline) assert.fail('the watcher row stayed after the watcher left');
        await sleep(50);
      }
      const before = await rows(key);
      await service.advance(key, claim.epoch, { currentIndex: 50 });
      await service.claim('quiet:marker-2');
      await recorded('quiet:marker-2');
      assert.equal(await rows(key), before, 'no row for an advance nobody watches');
      await service.complete(key, claim.epoch, null);
      await recorded(key, before + 1);
    } finally {
      await app.close();
      await dropSchema(schema);
    }
  });
});

/** The backend of a server connection of the transaction pooler (it closes it within 2 s). */
async function serverConnection(): Promise<number> {
  const client = new pg.Client({ connectionString: transaction.url });
  await client.connect();
  try {
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    return rows[0]?.pid ?? 0;
  } finally {
    await client.end();
  }
}
