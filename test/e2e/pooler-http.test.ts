// The HTTP module through a real PgBouncer in transaction pooling without a direct URL (no
// LISTEN: its streams follow the shared poll), its server connections recycled every 2 s. A
// second application (its own DataSource, as a worker process has) runs a checkpointed job
// through the same pooler; the HTTP application lists it, shows it, streams its progress and
// pauses it, and the job stops at a batch boundary.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import type { INestApplicationContext } from '@nestjs/common';
import { after, before, describe, it, type TestContext } from 'node:test';
import { CheckpointPausedError } from '../../src/index.js';
import { Effect, TransactionalJob, createEffectTable } from '../fixtures/batch-job.js';
import { createTestApp } from '../support/app.js';
import { dropSchema, sql, uniqueSchema } from '../support/database.js';
import {
  createHttpApp,
  OPERATOR,
  OperatorGuard,
  READER,
  request,
  SessionGuard,
  SseClient,
  type HttpTestApp,
} from '../support/http.js';
import { PgBouncer } from '../support/pgbouncer.js';

const schema = uniqueSchema('pool_http');
const CONNECTION = { pooling: 'transaction' } as const;
const ITEMS = 6000;
let bouncer: PgBouncer;
let http: HttpTestApp;
let worker: INestApplicationContext;
let api: string;

before(async () => {
  bouncer = await PgBouncer.recycling(10);
  await sql(`CREATE SCHEMA "${schema}"`);
  await sql(createEffectTable(schema));
  // A 30 s lease is renewed every 10 s: the pause is heard by the shared poll before that.
  worker = await createTestApp({
    schema,
    url: bouncer.url,
    poolSize: 3,
    entities: [Effect],
    providers: [TransactionalJob],
    checkpoint: { connection: CONNECTION, leaseTtlMs: 30_000 },
  });
  http = await createHttpApp({
    schema,
    url: bouncer.url,
    guard: SessionGuard,
    controlGuard: OperatorGuard,
    checkpoint: { connection: CONNECTION },
    pool: 4,
  });
  api = `${http.url}/ops/checkpoints/api`;
});

after(async () => {
  await http?.app.close();
  await worker?.close();
  await bouncer?.stop();
  await dropSchema(schema);
});

/** `promise`, or a failure naming `what` after `ms` (a bound on a wait, not a measurement). */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, bound]);
  } finally {
    clearTimeout(timer);
  }
}

const effects = async () =>
  (
    await sql<{ rows: number; distinct: number }>(
      `SELECT count(*)::int AS rows, count(DISTINCT item)::int AS distinct FROM "${schema}".effect`,
    )
  )[0];

describe('the HTTP module through a transaction pooler without a direct URL', () => {
  it("lists and shows a running key, streams its progress, pauses it from the page's endpoint: the job stops at a batch boundary; resumed, it completes, each item once", async (t: TestContext) => {
    const key = 'pooled/1';
    const enc = encodeURIComponent(key);
    const job = worker.get(TransactionalJob);
    job.batchDelayMs = 20;
    const items = Array.from({ length: ITEMS }, (_, i) => i);
    const first = job.run({ key, items });
    first.catch(() => undefined);

    // The key exists once the job claimed it: then it is listed and shown.
    let shown = await request(`${api}/keys/${enc}`, { session: READER });
    for (let tries = 0; shown.status === 404 && tries < 600; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      shown = await request(`${api}/keys/${enc}`, { session: READER });
    }
    assert.equal(shown.status, 200);
    assert.equal(shown.body.state, 'running');
    const listed = await request(`${api}/keys?search=pooled/`, { session: READER });
    assert.equal(listed.status, 200);
    assert.deepEqual(
      (listed.body.items as Array<{ key: string; state: string }>).map((one) => [
        one.key,
        one.state,
      ]),
      [[key, 'running']],
    );

    // The stream sends the key's view now, then its changes as the job advances.
    const stream = new SseClient(`${api}/keys/${enc}/events`, READER, key);
    try {
      await within(stream.reached(0), 30_000, 'the first event');
      const from = stream.seen;
      await within(stream.reached(from + 200), 30_000, 'a change on the stream');
      t.diagnostic(`the stream went from ${from} to ${stream.seen} items`);

      const paused = await request(`${api}/keys/${enc}/pause`, {
        method: 'POST',
        session: OPERATOR,
      });
      assert.equal(paused.status, 200);
      await assert.rejects(within(first, 60_000, 'the job to stop'), CheckpointPausedError);
      const [row] = await sql<{ state: string; control: string; current_index: string }>(
        `SELECT state, control, current_index FROM "${schema}".checkpoint WHERE key = $1`,
        [key],
      );
      assert.equal(row?.state, 'paused');
      assert.equal(row?.control, 'pause');
      const at = Number(row?.current_index);
      assert.ok(at > 0 && at < ITEMS, `stopped at ${at}, between the first and the last batch`);
      assert.equal(at % 50, 0, 'at a batch boundary');
      // What committed before the stop is exactly the items before it, each once.
      assert.deepEqual(await effects(), { rows: at, distinct: at });
      const view = await request(`${api}/keys/${enc}`, { session: READER });
      assert.equal(view.body.state, 'paused');
      assert.equal(view.body.processedItems, at);

      const resumed = await request(`${api}/keys/${enc}/resume`, {
        method: 'POST',
        session: OPERATOR,
      });
      assert.equal(resumed.status, 200);
      job.batchDelayMs = 2;
      assert.deepEqual(await job.run({ key, items }), { items: ITEMS });
      await within(stream.reached(ITEMS), 30_000, 'the completion on the stream');
      t.diagnostic(`paused at item ${at}; the stream saw the completion`);
    } finally {
      await stream.close();
    }
    assert.deepEqual(await effects(), { rows: ITEMS, distinct: ITEMS });
    const done = await request(`${api}/keys/${enc}`, { session: READER });
    assert.equal(done.body.state, 'completed');
  });
});
