// Ownership under real faults, in this process: a silent network partition of an owner (a TCP
// proxy that stops forwarding without closing sockets), a concurrent ACCESS EXCLUSIVE lock on
// the table, two same-tick calls on one key, watch() of many short keys, and the lease renewal's
// statement count.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import {
  Injectable,
  Logger,
  type INestApplicationContext,
  type LoggerService,
} from '@nestjs/common';
import { firstValueFrom, toArray } from 'rxjs';
import pg, { type Pool } from 'pg';
import { DataSource } from 'typeorm';
import {
  CheckpointCtx,
  CheckpointFencedError,
  CheckpointLeaseConflictError,
  CheckpointService,
  CheckpointStoreError,
  Checkpointed,
  type CheckpointContext,
  type CheckpointProgress,
} from '../../src/index.js';
import { isConnectionFailure } from '../../src/checkpoint.errors.js';
import { CountingLogger, createTestApp } from '../support/app.js';
import { DATABASE_URL, dropSchema, sql, uniqueSchema } from '../support/database.js';
import { TcpProxy } from '../support/proxy.js';

const schema = uniqueSchema('faults');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const LEASE_TTL_MS = 3000;

interface Input {
  key: string;
  items: number[];
  msPerBatch?: number;
  /** Called inside this batch, after its effects were written and before its advance. */
  during?: { batch: number; action: () => void };
}

/** A transactional job writing one effect row per item: duplicates show as rows per item > 1. */
@Injectable()
class Work {
  // The input is the items; `during` is the test's hook, not part of it.
  @Checkpointed({
    key: (input: Input) => input.key,
    fingerprint: (input: Input) => input.items,
    batchSize: 10,
    transactional: true,
  })
  async run(input: Input, @CheckpointCtx() ctx?: CheckpointContext): Promise<number> {
    const context = ctx as CheckpointContext;
    for await (const batch of context.batches(input.items)) {
      await batch.manager.query(
        `INSERT INTO "${schema}".effect (key, item, attempt) SELECT $1, unnest($2::int[]), $3`,
        [input.key, batch.items, context.attempt],
      );
      if (input.during?.batch === batch.index) input.during.action();
      if (input.msPerBatch !== undefined) await sleep(input.msPerBatch);
    }
    return context.progress().processedItems;
  }
}

/**
 * A transactional job whose first attempt loses its batch's connection after writing the
 * batch's effects and before the library advances through that transaction: TypeORM releases
 * the runner, and the advance must see the database going away, not a transaction that ended.
 */
@Injectable()
class LosesItsConnection {
  @Checkpointed({ key: (key: string) => key, batchSize: 10, transactional: true })
  async run(key: string, @CheckpointCtx() ctx?: CheckpointContext): Promise<number> {
    const context = ctx as CheckpointContext;
    for await (const batch of context.batches(range(30))) {
      await batch.manager.query(
        `INSERT INTO "${schema}".effect (key, item, attempt) SELECT $1, unnest($2::int[]), $3`,
        [key, batch.items, context.attempt],
      );
      if (batch.index === 1 && context.attempt === 1) {
        const [own] = await batch.manager.query<Array<{ pid: number }>>(
          'SELECT pg_backend_pid() AS pid',
        );
        await sql('SELECT pg_terminate_backend($1)', [own?.pid]);
        while (batch.manager.queryRunner?.isReleased !== true) await sleep(5);
      }
    }
    return context.progress().processedItems;
  }
}

/** Collects what the library logs, to show that a stall is visible. */
class CollectingLogger implements LoggerService {
  readonly lines: string[] = [];
  log(message: unknown): void {
    this.lines.push(`log ${String(message)}`);
  }
  warn(message: unknown): void {
    this.lines.push(`warn ${String(message)}`);
  }
  error(message: unknown): void {
    this.lines.push(`error ${String(message)}`);
  }
}

const apps: INestApplicationContext[] = [];
const logs = new CollectingLogger();
const counting = new CountingLogger();
let app: INestApplicationContext;
let service: CheckpointService;
let work: Work;

async function boot(options: Parameters<typeof createTestApp>[0]) {
  const created = await createTestApp(options);
  apps.push(created);
  return created;
}

async function effects(key: string) {
  const [row] = await sql<{ rows: number; distinct: number }>(
    `SELECT count(*)::int AS rows, count(DISTINCT item)::int AS distinct
       FROM "${schema}".effect WHERE key = $1`,
    [key],
  );
  return row ?? { rows: 0, distinct: 0 };
}

before(async () => {
  await sql(`CREATE SCHEMA "${schema}"`);
  await sql(
    `CREATE TABLE "${schema}".effect (key text NOT NULL, item int NOT NULL, attempt int NOT NULL)`,
  );
  app = await boot({
    schema,
    providers: [Work, LosesItsConnection],
    logger: counting,
    checkpoint: { leaseTtlMs: LEASE_TTL_MS, stallWarnMs: 300, statementTimeoutMs: 1500 },
  });
  service = app.get(CheckpointService);
  work = app.get(Work);
  Logger.overrideLogger(logs);
});

after(async () => {
  Logger.overrideLogger(['error', 'warn']);
  for (const each of apps.reverse()) await each.close().catch(() => undefined);
  await dropSchema(schema);
});

describe('faults in one process', () => {
  it('two same-tick calls on one key: the second gets the lease conflict at once (50 rounds)', async (t: TestContext) => {
    let losersFirst = 0;
    for (let round = 0; round < 50; round++) {
      const key = `tick-${round}`;
      const order: string[] = [];
      const first = service.claim(key).then((claim) => {
        order.push('winner');
        return claim;
      });
      const second = service.claim(key).then(
        () => order.push('second won'),
        (error: unknown) => {
          order.push(error instanceof CheckpointLeaseConflictError ? 'loser' : String(error));
        },
      );
      await Promise.all([first, second]);
      assert.deepEqual(order, ['loser', 'winner'], `round ${round}`);
      losersFirst += 1;
      await service.release(key, (await first).epoch);
      // The decorated method: the same, and the winner's work is not disturbed.
      const items = range(30);
      const a = work.run({ key: `tick-run-${round}`, items });
      const b = work.run({ key: `tick-run-${round}`, items });
      await assert.rejects(b, CheckpointLeaseConflictError);
      assert.equal(await a, 30);
    }
    t.diagnostic(
      `same-tick calls: the loser got CheckpointLeaseConflictError first in ${losersFirst}/50 rounds`,
    );
  });

  it('watch() of 200 short keys: every watcher ends with the final state', async (t: TestContext) => {
    let completedLast = 0;
    for (let group = 0; group < 10; group++) {
      await Promise.all(
        range(20).map(async (i) => {
          const key = `watched-${group}-${i}`;
          // The key exists (and is watched) before the work starts.
          await service.saveCheckpoint(key, {
            currentBatchIndex: 0,
            currentIndex: 0,
            processedBatches: 0,
            totalBatches: 3,
          });
          const seen = firstValueFrom(service.watch(key).pipe(toArray()));
          await sleep(20);
          await work.run({ key, items: range(30) });
          const values: CheckpointProgress[] = await seen;
          const last = values.at(-1);
          assert.equal(
            last?.state,
            'completed',
            `${key}: ${JSON.stringify(values.map((v) => v.state))}`,
          );
          assert.equal(last?.processedItems, 30);
          completedLast += 1;
        }),
      );
    }
    t.diagnostic(`watch(): ${completedLast}/200 watchers ended with the completed state`);
    assert.equal(completedLast, 200);
  });

  it('renews all of a process’s leases in one statement per interval', async (t: TestContext) => {
    const claims = await Promise.all(range(20).map((i) => service.claim(`renewed-${i}`)));
    const started = Date.now();
    const statements = await counting.during(() => sleep(LEASE_TTL_MS + 500));
    const elapsed = Date.now() - started;
    const renewals = statements.filter(
      (text) => text.includes('lease_expires_at = clock_timestamp()') && text.startsWith('UPDATE'),
    );
    t.diagnostic(
      `${claims.length} leases held for ${elapsed} ms (TTL ${LEASE_TTL_MS} ms): ${renewals.length} renewal statements, ${statements.length} statements in all`,
    );
    const intervals = elapsed / (LEASE_TTL_MS / 3);
    assert.ok(renewals.length >= 2, `${renewals.length} renewals`);
    assert.ok(
      renewals.length <= Math.ceil(intervals) + 1,
      `${renewals.length} renewals in ${intervals.toFixed(1)} intervals`,
    );
    for (const claim of claims) {
      assert.equal(claim.signal.aborted, false);
      await service.release(claim.key, claim.epoch);
    }
  });

  it('a table lock stalls a statement visibly, and it ends with a typed error after the timeout', async (t: TestContext) => {
    const claim = await service.claim('locked');
    const locker = new pg.Client({ connectionString: DATABASE_URL });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE "${schema}".checkpoint IN ACCESS EXCLUSIVE MODE`);
      const lockerPid = (await locker.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'))
        .rows[0]?.pid;
      const from = logs.lines.length;
      const started = Date.now();
      const error = await service.advance('locked', claim.epoch, { currentIndex: 10 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      const waited = Date.now() - started;
      const lines = logs.lines.slice(from);
      t.diagnostic(
        `advance under an ACCESS EXCLUSIVE lock ended after ${waited} ms: ${(error as Error).message}`,
      );
      t.diagnostic(`logged: ${lines.filter((l) => l.includes('locked')).join(' | ')}`);
      assert.ok(error instanceof CheckpointStoreError, String(error));
      assert.match(error.message, /statementTimeoutMs/);
      assert.ok(
        lines.some(
          (line) =>
            line.startsWith('warn') &&
            line.includes('advance of key "locked" has waited') &&
            line.includes(`blocked by backend ${lockerPid}`),
        ),
        lines.join('\n'),
      );
      // At least the statement timeout; the upper bound only detects a hang.
      assert.ok(waited >= 1500 && waited < 60_000, `${waited} ms`);
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
    }
    await service.advance('locked', claim.epoch, { currentIndex: 10 });
    await service.complete('locked', claim.epoch);
  });

  it('a statement whose backend is terminated under it fails with CheckpointStoreError, and the process lives on (20 rounds)', async (t: TestContext) => {
    const claim = await service.claim('terminated');
    const locker = new pg.Client({ connectionString: DATABASE_URL });
    await locker.connect();
    const lockerPid = (await locker.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'))
      .rows[0]?.pid;
    const outcomes = new Map<string, number>();
    try {
      for (let round = 0; round < 20; round++) {
        await locker.query('BEGIN');
        await locker.query(`LOCK TABLE "${schema}".checkpoint IN ACCESS EXCLUSIVE MODE`);
        const advanced = service.advance('terminated', claim.epoch, { currentIndex: round }).then(
          () => undefined,
          (e: unknown) => e,
        );
        // The advance's backend, waiting for the lock: the server ends it with a FATAL error and
        // closes the socket at once, so the client sees both before the library releases it.
        let waiting: number | undefined;
        for (let i = 0; i < 200 && waiting === undefined; i++) {
          const [row] = await sql<{ pid: number }>(
            // The advance, not the lease renewal that the lock may hold up too.
            `SELECT pid FROM pg_stat_activity
              WHERE $1 = ANY (pg_blocking_pids(pid)) AND query LIKE '%intermediate_result%'
              LIMIT 1`,
            [lockerPid],
          );
          waiting = row?.pid;
          if (waiting === undefined) await sleep(10);
        }
        if (waiting === undefined) {
          const sessions = await sql(
            `SELECT pid, state, wait_event_type, pg_blocking_pids(pid) AS blocked_by,
                    left(query, 80) AS query
               FROM pg_stat_activity WHERE datname = current_database()`,
          );
          const pool = (app.get(DataSource).driver as unknown as { master: Pool }).master;
          assert.fail(
            `round ${round}: the advance never waited for the lock (locker ${lockerPid}; pool ` +
              `${pool.totalCount} clients, ${pool.idleCount} idle, ${pool.waitingCount} waiting; ` +
              `advance ${await Promise.race([advanced.then((e) => `settled: ${String(e)}`), sleep(0).then(() => 'pending')])}):\n` +
              JSON.stringify(sessions, null, 1),
          );
        }
        await sql('SELECT pg_terminate_backend($1)', [waiting]);
        const error = await advanced;
        await locker.query('ROLLBACK');
        assert.ok(error instanceof CheckpointStoreError, String(error));
        assert.ok(isConnectionFailure(error), (error as Error).message);
        const cause = (error.cause as Error).message;
        outcomes.set(cause, (outcomes.get(cause) ?? 0) + 1);
      }
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      await locker.end();
    }
    t.diagnostic(
      `20 terminated statements: ${[...outcomes].map(([cause, n]) => `${n}× "${cause}"`).join(', ')}`,
    );
    // The pool gave the dead connections up: the next statements work.
    await service.advance('terminated', claim.epoch, { currentIndex: 20 });
    await service.complete('terminated', claim.epoch);
  });

  it('a batch whose transaction loses its connection before the advance resumes in place, each item once', async (t: TestContext) => {
    const from = logs.lines.length;
    assert.equal(await app.get(LosesItsConnection).run('lost-connection'), 30);
    const waited = logs.lines
      .slice(from)
      .find((line) => line.includes('lost the database under "lost-connection"'));
    t.diagnostic(`logged: ${waited}`);
    assert.match(waited ?? '', /connection of the manager given was lost/);
    assert.deepEqual(await effects('lost-connection'), { rows: 30, distinct: 30 });
    const record = await service.find('lost-connection');
    assert.equal(record?.state, 'completed');
    assert.equal(record?.attempt, 2);
  });

  it('a silently partitioned owner loses the key within the lease TTL and is fenced after the heal', async (t: TestContext) => {
    const target = new URL(DATABASE_URL);
    const proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
    await proxy.start();
    // A failed assertion must not leave the partitioned sockets holding the test process open.
    t.after(() => proxy.close());
    const cutOff = await boot({
      schema,
      providers: [Work],
      url: proxy.urlFor(DATABASE_URL),
      poolSize: 4,
      checkpoint: { leaseTtlMs: LEASE_TTL_MS, statementTimeoutMs: 60_000 },
    });
    const key = 'partitioned';
    const items = range(200);
    let partitionedAt = 0;
    // Cut the network in the middle of batch 3 (effects written, advance not yet sent).
    const stale = cutOff.get(Work).run({
      key,
      items,
      msPerBatch: 20,
      during: {
        batch: 3,
        action: () => {
          partitionedAt = Date.now();
          proxy.partition();
        },
      },
    });
    const staleOutcome = stale.then(
      () => 'completed',
      (error: unknown) => error,
    );
    while (partitionedAt === 0) await sleep(10);
    let conflicts = 0;
    for (;;) {
      try {
        const claim = await service.claim(key);
        await service.release(key, claim.epoch);
        break;
      } catch (error) {
        assert.ok(error instanceof CheckpointLeaseConflictError, String(error));
        conflicts += 1;
        await sleep(100);
      }
    }
    const takeoverMs = Date.now() - partitionedAt;
    // The other caller finishes the work, resuming where the partitioned owner last committed.
    assert.equal(await work.run({ key, items }), 200);
    proxy.heal();
    const outcome = await staleOutcome;
    t.diagnostic(
      `partitioned owner: another caller took over ${takeoverMs} ms after the cut (lease TTL ${LEASE_TTL_MS} ms, ${conflicts} conflicts before); after the heal the old owner got ${(outcome as Error).name ?? outcome}`,
    );
    assert.ok(takeoverMs <= LEASE_TTL_MS + 5000, `takeover after ${takeoverMs} ms`);
    assert.ok(outcome instanceof CheckpointFencedError, String(outcome));
    assert.deepEqual(await effects(key), { rows: 200, distinct: 200 }, '0 duplicates');
    await proxy.close();
  });
});
