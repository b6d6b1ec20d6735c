import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Injectable, Scope, SetMetadata, type INestApplicationContext } from '@nestjs/common';
import { getDataSourceToken, InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { firstValueFrom, toArray } from 'rxjs';
import {
  CheckpointConfigError,
  CheckpointCtx,
  CheckpointFencedError,
  CheckpointInputChangedError,
  CheckpointLeaseConflictError,
  CheckpointService,
  Checkpointed,
  type CheckpointContext,
} from '../../src/index.js';
import { createTestApp } from '../support/app.js';
import { dropSchema, sql, uniqueSchema } from '../support/database.js';

const schema = uniqueSchema('deco');
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Input {
  key: string;
  items: number[];
  /** The first attempt throws when it reaches this batch. */
  failAt?: number;
  /** Pauses at this batch (after its effects) until `release` resolves. */
  hold?: { batch: number; reached: () => void; release: Promise<void> };
  /** Milliseconds of simulated work per item. */
  msPerItem?: number;
  /** Receives the backend pid of each batch's transaction. */
  pids?: number[];
}

interface Seen {
  key: string;
  index: number;
  startIndex: number;
  size: number;
  attempt: number;
}

const byKey = (input: Input) => input.key;

/** The batch handlers under test; each writes one effect row per item through batch.manager. */
@Injectable()
class Jobs {
  readonly seen: Seen[] = [];
  lastContext?: CheckpointContext;

  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  @Checkpointed({
    key: byKey,
    batchSize: 10,
    transactional: true,
    fingerprint: (input: Input) => input.items,
  })
  strict(input: Input, @CheckpointCtx() ctx?: CheckpointContext) {
    return this.process(input, ctx);
  }

  @Checkpointed({
    key: byKey,
    batchSize: 10,
    transactional: true,
    fingerprint: (input: Input) => input.items,
    onInputChange: 'restart',
  })
  restarting(input: Input, @CheckpointCtx() ctx?: CheckpointContext) {
    return this.process(input, ctx);
  }

  @Checkpointed({
    key: byKey,
    batchSize: 10,
    transactional: true,
    fingerprint: (input: Input) => input.items,
    onInputChange: 'resume',
  })
  resuming(input: Input, @CheckpointCtx() ctx?: CheckpointContext) {
    return this.process(input, ctx);
  }

  @Checkpointed({ key: byKey, batchSize: 10, transactional: true, onCompleted: 'rerun' })
  rerunning(input: Input, @CheckpointCtx() ctx?: CheckpointContext) {
    return this.process(input, ctx);
  }

  // Resumes what strict() began: the same fingerprint, as the default (all arguments) would
  // also digest the test's failAt.
  @Checkpointed({
    key: byKey,
    batchSize: 25,
    transactional: true,
    fingerprint: (input: Input) => input.items,
  })
  larger(input: Input, @CheckpointCtx() ctx?: CheckpointContext) {
    return this.process(input, ctx);
  }

  @Checkpointed({ key: byKey, batchSize: { targetMs: 50, min: 1, max: 1000 } })
  adaptive(input: Input, @CheckpointCtx() ctx?: CheckpointContext) {
    return this.process(input, ctx);
  }

  @SetMetadata('other:metadata', 'kept')
  @Checkpointed({ key: (label: string) => `labelled:${label}` })
  labelled(label: string) {
    return Promise.resolve(`${label} by ${this.constructor.name}`);
  }

  // The input is the table; failAtPage only steers the test, so it is left out of the fingerprint.
  @Checkpointed({
    key: (key: string) => key,
    batchSize: 100,
    transactional: true,
    fingerprint: (key: string) => key,
  })
  async fromTable(
    key: string,
    failAtPage: number | undefined,
    @CheckpointCtx() ctx?: CheckpointContext,
  ) {
    const context = ctx as CheckpointContext;
    const afters: Array<number | null> = [];
    const fetchPage = async (after: number | null, limit: number) => {
      afters.push(after);
      return this.dataSource.query<Array<{ id: number }>>(
        `SELECT id FROM "${schema}".source WHERE id > $1 ORDER BY id LIMIT $2`,
        [after ?? 0, limit],
      );
    };
    for await (const page of context.pages(fetchPage, (row) => row.id)) {
      if (page.index === failAtPage) throw new Error(`boom at page ${page.index}`);
      await page.manager.query(
        `INSERT INTO "${schema}".effect (key, item, attempt) SELECT $1, unnest($2::int[]), $3`,
        [key, page.items.map((row) => row.id), context.attempt],
      );
    }
    return afters;
  }

  private async process(
    input: Input,
    ctx: CheckpointContext | undefined,
  ): Promise<{ processed: number }> {
    const context = ctx as CheckpointContext;
    this.lastContext = context;
    for await (const batch of context.batches(input.items)) {
      this.seen.push({
        key: input.key,
        index: batch.index,
        startIndex: batch.startIndex,
        size: batch.items.length,
        attempt: context.attempt,
      });
      if (input.failAt === batch.index && context.attempt === 1)
        throw new Error(`boom at batch ${batch.index}`);
      if (input.msPerItem !== undefined) await sleep(input.msPerItem * batch.items.length);
      if (input.pids !== undefined) {
        const [{ pid }] = await batch.manager.query<[{ pid: number }]>(
          'SELECT pg_backend_pid() AS pid',
        );
        input.pids.push(pid);
      }
      await batch.manager.query(
        `INSERT INTO "${schema}".effect (key, item, attempt) SELECT $1, unnest($2::int[]), $3`,
        [input.key, batch.items, context.attempt],
      );
      if (input.hold?.batch === batch.index) {
        input.hold.reached();
        await input.hold.release;
      }
    }
    return { processed: context.progress().processedItems };
  }
}

/** Left alone by the explorer: request-scoped providers are not wrapped. */
@Injectable({ scope: Scope.REQUEST })
class RequestScoped {
  @Checkpointed({ key: () => 'request-scoped' })
  run() {
    return 'ran as a plain method';
  }
}

let app: INestApplicationContext;
let jobs: Jobs;
let service: CheckpointService;

async function effects(key: string) {
  return sql<{ item: number; n: number; attempts: number[] }>(
    `SELECT item, count(*)::int AS n, array_agg(attempt ORDER BY attempt) AS attempts
       FROM "${schema}".effect WHERE key = $1 GROUP BY item ORDER BY item`,
    [key],
  );
}

function holdAt(batch: number) {
  let reached!: () => void;
  let release!: () => void;
  const reachedPromise = new Promise<void>((resolve) => (reached = resolve));
  const releasePromise = new Promise<void>((resolve) => (release = resolve));
  return { hold: { batch, reached, release: releasePromise }, reached: reachedPromise, release };
}

before(async () => {
  await sql(`CREATE SCHEMA "${schema}"`);
  await sql(
    `CREATE TABLE "${schema}".effect (key text NOT NULL, item int NOT NULL, attempt int NOT NULL)`,
  );
  await sql(`CREATE TABLE "${schema}".source (id int PRIMARY KEY)`);
  await sql(`INSERT INTO "${schema}".source SELECT generate_series(1, 1000)`);
  app = await createTestApp({ schema, providers: [Jobs, RequestScoped] });
  jobs = app.get(Jobs);
  service = app.get(CheckpointService);
});

after(async () => {
  await app.close();
  await dropSchema(schema);
});

describe('@Checkpointed()', () => {
  it('resumes after a thrown error at the first item of the failed batch', async () => {
    await assert.rejects(
      jobs.strict({ key: 'err', items: range(0, 100), failAt: 3 }),
      /boom at batch 3/,
    );
    const failed = await service.find('err');
    assert.equal(failed?.state, 'failed');
    assert.equal(failed?.currentIndex, 30);
    assert.deepEqual((failed?.error as { message: string }).message, 'boom at batch 3');

    const result = await jobs.strict({ key: 'err', items: range(0, 100) });
    assert.deepEqual(result, { processed: 100 });
    const resumed = jobs.seen.filter((s) => s.key === 'err' && s.attempt === 2);
    assert.equal(resumed[0]?.startIndex, 30);
    assert.equal(resumed[0]?.index, 3);
    const rows = await effects('err');
    assert.equal(rows.length, 100);
    assert.ok(rows.every((row) => row.n === 1));
    assert.equal((await service.find('err'))?.state, 'completed');
  });

  it('returns the stored result for a completed key without working again, or reruns when asked', async () => {
    const before = jobs.seen.length;
    assert.deepEqual(await jobs.strict({ key: 'err', items: range(0, 100) }), { processed: 100 });
    assert.equal(jobs.seen.length, before, 'no batch ran');

    await jobs.rerunning({ key: 'rerun', items: range(0, 20) });
    await jobs.rerunning({ key: 'rerun', items: range(0, 20) });
    const rows = await effects('rerun');
    assert.ok(
      rows.every((row) => row.n === 2),
      'the second call did the work again',
    );
  });

  it('fails by default when the input changed, and keeps the progress', async () => {
    await assert.rejects(jobs.strict({ key: 'changed', items: range(0, 50), failAt: 2 }), /boom/);
    await assert.rejects(
      jobs.strict({ key: 'changed', items: range(100, 150) }),
      (error: Error) =>
        error instanceof CheckpointInputChangedError &&
        /stored fingerprint \w+, now \w+/.test(error.message),
    );
    assert.equal((await service.find('changed'))?.currentIndex, 20);
    await jobs.strict({ key: 'changed', items: range(0, 50) });
    assert.equal((await effects('changed')).length, 50);
  });

  it("restarts from item 0 under onInputChange: 'restart'", async () => {
    await assert.rejects(
      jobs.restarting({ key: 'restart', items: range(0, 50), failAt: 2 }),
      /boom/,
    );
    await jobs.restarting({ key: 'restart', items: range(100, 150) });
    const rows = await effects('restart');
    assert.deepEqual(
      rows.filter((row) => row.item >= 100).map((row) => row.item),
      range(100, 150),
    );
  });

  it("keeps the progress under onInputChange: 'resume'", async () => {
    await assert.rejects(jobs.resuming({ key: 'resume', items: range(0, 50), failAt: 2 }), /boom/);
    await jobs.resuming({ key: 'resume', items: range(100, 150) });
    const items = (await effects('resume')).map((row) => row.item);
    assert.deepEqual(items, [...range(0, 20), ...range(120, 150)]);
  });

  it('lets one of two concurrent calls on a key proceed; the other fails at once', async () => {
    const { hold, reached, release } = holdAt(1);
    const first = jobs.strict({ key: 'twice', items: range(0, 40), hold });
    await reached;
    await assert.rejects(
      jobs.strict({ key: 'twice', items: range(0, 40) }),
      CheckpointLeaseConflictError,
    );
    release();
    assert.deepEqual(await first, { processed: 40 });
    assert.ok((await effects('twice')).every((row) => row.n === 1));
  });

  it('fences a stale attempt: its batch rolls back and its signal fires', async () => {
    const stale = await createTestApp({ schema, providers: [Jobs], poolSize: 4 });
    const staleJobs = stale.get(Jobs);
    const { hold, reached, release } = holdAt(2);
    const running = staleJobs.strict({ key: 'stale', items: range(0, 60), hold });
    await reached;
    // The stale attempt's lease lapses (its process could not renew it: a network cut) and a
    // new attempt takes over.
    await sql(
      `UPDATE "${schema}".checkpoint SET lease_expires_at = clock_timestamp() - interval '1 second'
        WHERE key = 'stale'`,
    );
    let takeover;
    for (;;) {
      try {
        takeover = await service.claim('stale');
        break;
      } catch {
        await sleep(10);
      }
    }
    release();
    await assert.rejects(running, CheckpointFencedError);
    assert.equal(staleJobs.lastContext?.signal.aborted, true);
    const rows = await effects('stale');
    assert.deepEqual(
      rows.map((row) => row.item),
      range(0, 20),
      'batch 2 of the stale attempt rolled back',
    );
    const row = await service.find('stale');
    assert.equal(row?.epoch, takeover.epoch);
    assert.equal(row?.currentIndex, 20);
    await service.release('stale', takeover.epoch);
    await jobs.strict({ key: 'stale', items: range(0, 60) });
    assert.ok((await effects('stale')).every((each) => each.n === 1));
    await stale.close();
  });

  it('fences an attempt whose key was cleared under it: its batch rolls back', async () => {
    const { hold, reached, release } = holdAt(2);
    const running = jobs.strict({ key: 'cleared', items: range(0, 60), hold });
    await reached;
    await service.clearCheckpoint('cleared');
    release();
    await assert.rejects(running, CheckpointFencedError);
    const rows = await effects('cleared');
    assert.deepEqual(
      rows.map((row) => row.item),
      range(0, 20),
      'batch 2, whose commit found no row, rolled back',
    );
    assert.equal(await service.find('cleared'), null);
  });

  it("runs a call's batches on one connection, each commit beginning the next batch", async () => {
    let commits = 0;
    const counter = { afterTransactionCommit: () => void (commits += 1) };
    const dataSource = app.get<DataSource>(getDataSourceToken());
    dataSource.subscribers.push(counter);
    try {
      const pids: number[] = [];
      await jobs.strict({ key: 'one-connection', items: range(0, 50), pids });
      assert.equal(pids.length, 5);
      assert.equal(new Set(pids).size, 1, `batches ran on backends ${pids.join(', ')}`);
      assert.equal(commits, 5, "TypeORM's subscribers hear each batch's commit");
      assert.ok((await effects('one-connection')).every((row) => row.n === 1));
      // A loop left by a throw leaves no transaction open on its connection.
      const left: number[] = [];
      await assert.rejects(
        jobs.strict({ key: 'left-early', items: range(0, 50), failAt: 3, pids: left }),
        /boom at batch 3/,
      );
      const [session] = await sql<{ state: string }>(
        'SELECT state FROM pg_stat_activity WHERE pid = $1',
        [left[0]],
      );
      assert.equal(session?.state, 'idle');
      assert.equal((await effects('left-early')).length, 30, 'batches 0-2 committed');
    } finally {
      dataSource.subscribers.splice(dataSource.subscribers.indexOf(counter), 1);
    }
  });

  it('resumes by item index when the batch size changed between attempts', async () => {
    await assert.rejects(jobs.strict({ key: 'resized', items: range(0, 100), failAt: 3 }), /boom/);
    await jobs.larger({ key: 'resized', items: range(0, 100) });
    const later = jobs.seen.filter((s) => s.key === 'resized' && s.attempt === 2);
    assert.deepEqual(
      later.map((s) => [s.startIndex, s.size]),
      [
        [30, 25],
        [55, 25],
        [80, 20],
      ],
    );
    assert.ok((await effects('resized')).every((row) => row.n === 1));
  });

  it('adapts the batch size from the measured batch times', async () => {
    // 0.5 ms per item and a 50 ms target. The convergence itself is checked with given times in
    // the BatchSizer unit test; measured times here depend on the machine's load, so this checks
    // the wiring: the first batch has the sizer's start size, later ones follow the measurements.
    await jobs.adaptive({ key: 'adaptive', items: range(0, 3000), msPerItem: 0.5 });
    const sizes = jobs.seen.filter((s) => s.key === 'adaptive').map((s) => s.size);
    assert.equal(sizes[0], 10);
    assert.ok(
      sizes.some((size) => size !== 10),
      `the size never moved from 10: ${sizes.join(', ')}`,
    );
    assert.ok(
      sizes.every((size) => size >= 1 && size <= 1000),
      `sizes within min and max: ${sizes.join(', ')}`,
    );
  });

  it('pages() resumes after the stored cursor, not an index', async () => {
    await assert.rejects(jobs.fromTable('paged', 3), /boom at page 3/);
    const row = await service.find('paged');
    assert.equal(row?.cursor, 300);
    const afters = await jobs.fromTable('paged', undefined);
    assert.equal(afters[0], 300, 'the first page asked for the rows after the stored cursor');
    const rows = await effects('paged');
    assert.equal(rows.length, 1000);
    assert.ok(rows.every((each) => each.n === 1));
    assert.equal((await service.find('paged'))?.state, 'completed');
  });

  it('keeps `this`, the return value and the metadata of other decorators', async () => {
    assert.equal(await jobs.labelled('x'), 'x by Jobs');
    assert.equal(
      Reflect.getMetadata(
        'other:metadata',
        Object.getOwnPropertyDescriptor(jobs, 'labelled')?.value as object,
      ),
      'kept',
    );
    assert.equal((await service.find('labelled:x'))?.result, 'x by Jobs');
  });

  it('leaves request-scoped providers alone', async () => {
    const scoped = await app.resolve(RequestScoped);
    assert.equal(scoped.run(), 'ran as a plain method');
    assert.equal(await service.find('request-scoped'), null);
  });

  it('watch() streams progress until completion', async () => {
    const { hold, reached, release } = holdAt(0);
    const running = jobs.strict({ key: 'watched', items: range(0, 100), hold });
    await reached;
    const seen = firstValueFrom(service.watch('watched').pipe(toArray()));
    await sleep(50);
    release();
    await running;
    const progress = await seen;
    assert.ok(progress.length >= 2, `got ${progress.length} values`);
    assert.equal(progress.at(-1)?.state, 'completed');
    assert.equal(progress.at(-1)?.processedItems, 100);
    const processed = progress.map((p) => p.processedItems);
    assert.deepEqual(
      processed,
      [...processed].sort((a, b) => a - b),
    );
  });
});

describe('@Checkpointed() at bootstrap', () => {
  it('stops bootstrap when no key can be derived, or an option is invalid', async () => {
    @Injectable()
    class NoKey {
      @Checkpointed()
      run() {
        return 1;
      }
    }
    @Injectable()
    class BadSize {
      @Checkpointed({ key: () => 'k', batchSize: 0 })
      run() {
        return 1;
      }
    }
    await assert.rejects(
      createTestApp({ schema, providers: [NoKey] }),
      (error: Error) =>
        error instanceof CheckpointConfigError &&
        /NoKey\.run cannot derive a checkpoint key/.test(error.message),
    );
    await assert.rejects(
      createTestApp({ schema, providers: [BadSize] }),
      (error: Error) =>
        error instanceof CheckpointConfigError &&
        /batchSize must be a whole number >= 1 \(got 0\)/.test(error.message),
    );
  });
});
