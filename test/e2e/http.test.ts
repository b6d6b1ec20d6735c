// The HTTP module: reading with paging and filters, live server-sent events, and control
// endpoints that exist only behind the application's guard (403 and nothing changed without it;
// 400 naming the field for a bad body).
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CheckpointRuns, CheckpointService, FailedItemsService } from '../../src/index.js';
import pg from 'pg';
import { DATABASE_URL, dropSchema, sql, uniqueSchema } from '../support/database.js';
import {
  CapturingLogger,
  createHttpApp,
  EventData,
  OPERATOR,
  OperatorGuard,
  READER,
  request as send,
  SESSION_COOKIE,
  SessionGuard,
  type HttpTestApp,
} from '../support/http.js';
import { waitUntil } from '../support/wait.js';

const schema = uniqueSchema('http');
let guarded: HttpTestApp;
let open: HttpTestApp;
let service: CheckpointService;
let api: string;
const openLogs = new CapturingLogger();
const guardedLogs = new CapturingLogger();

/** A request of a signed-in reader, unless the options name another session. */
const request = (url: string, options: Parameters<typeof send>[1] = {}) =>
  send(url, { session: READER, ...options });

before(async () => {
  guarded = await createHttpApp({
    schema,
    guard: SessionGuard,
    controlGuard: OperatorGuard,
    logger: guardedLogs,
  });
  // The same application without any guard: reads open (and said loudly), control off.
  open = await createHttpApp({ schema, path: 'readonly', logger: openLogs });
  service = guarded.app.get(CheckpointService);
  api = `${guarded.url}/ops/checkpoints/api`;
});

after(async () => {
  await guarded.app.close();
  await open.app.close();
  await dropSchema(schema);
});

/** A key stopped at `at` of `total` items, and its epoch. */
async function seed(key: string, at: number, total = 100, runId?: string): Promise<number> {
  const claim = await service.claim(key, { totalItems: total });
  await service.advance(key, claim.epoch, { currentIndex: at, processedBatches: at / 10 });
  await service.release(key, claim.epoch);
  if (runId !== undefined) {
    await runRow(runId);
    await sql(`UPDATE "${schema}".checkpoint SET run_id = $1 WHERE key = $2`, [runId, key]);
  }
  return claim.epoch;
}

/** A run row as CheckpointRuns.start() writes it (a run is a row of the run table), once. */
async function runRow(id: string, chunks = 1, totalItems = 100): Promise<void> {
  await sql(
    `INSERT INTO "${schema}".run (id, queue, state, mode, total_items, chunk_count, chunk_size)
     VALUES ($1, 'q', 'running', 'queued', $2, $3, $4) ON CONFLICT (id) DO NOTHING`,
    [id, totalItems, chunks, Math.ceil(totalItems / chunks)],
  );
}

const snapshot = () =>
  sql(
    `SELECT key, state, control, epoch, current_index, updated_at FROM "${schema}".checkpoint ORDER BY key`,
  );
const enc = encodeURIComponent;

describe('reading', () => {
  it('lists keys with paging and filters, and shows one', async () => {
    await runRow('run-a', 3, 300);
    for (let i = 0; i < 7; i++) await seed(`list/${i}`, 10 * i, 100, i < 3 ? 'run-a' : undefined);
    // Keyset pages of 3, newest first: 3 + 3 + 1, each saying whether more follow.
    const seen: string[] = [];
    let after: string | null = null;
    for (const [size, more] of [
      [3, true],
      [3, true],
      [1, false],
    ] as const) {
      const page = await request(
        `${api}/keys?limit=3&search=list/${after === null ? '' : `&after=${enc(after)}`}`,
      );
      assert.equal(page.status, 200);
      const items = page.body.items as Array<{ key: string }>;
      assert.equal(items.length, size);
      assert.equal(page.body.more, more);
      seen.push(...items.map((item) => item.key));
      after = page.body.after as string | null;
    }
    assert.deepEqual(
      seen,
      [6, 5, 4, 3, 2, 1, 0].map((i) => `list/${i}`),
    );
    const ofRun = await request(`${api}/keys?runId=run-a`);
    assert.equal((ofRun.body.items as unknown[]).length, 3);
    const released = await request(`${api}/keys?state=released&search=list/`);
    assert.equal((released.body.items as unknown[]).length, 7);
    const offset = await request(`${api}/keys?offset=6`);
    assert.equal(offset.status, 400);
    assert.match(JSON.stringify(offset.body.message), /after/);
    assert.equal((await request(`${api}/keys?after=not-a-token`)).status, 400);

    const one = await request(`${api}/keys/${enc('list/4')}`);
    assert.equal(one.status, 200);
    assert.equal(one.body.key, 'list/4');
    assert.equal(one.body.processedItems, 40);
    assert.equal(one.body.totalItems, 100);
    assert.equal(one.body.percentage, 40);
    assert.equal((await request(`${api}/keys/${enc('no such key')}`)).status, 404);

    const run = await request(`${api}/runs/run-a`);
    assert.equal(run.status, 200);
    assert.equal(run.body.chunks, 3);
    assert.equal(run.body.processedItems, 0 + 10 + 20);
    assert.equal(run.body.totalItems, 300);
    assert.equal(run.body.state, 'running', "the library's state of the run");
    assert.equal((run.body.counts as { released: number }).released, 3);
    // One chunk failed, two can still run: the run is not failed (CheckpointRuns' definition).
    await sql(`UPDATE "${schema}".checkpoint SET state = 'failed' WHERE key = 'list/0'`);
    const partly = await request(`${api}/runs/run-a`);
    assert.deepEqual(
      [partly.body.state, (partly.body.counts as { failed: number }).failed],
      [(await guarded.app.get(CheckpointRuns).get('run-a'))?.state, 1],
    );
    assert.equal(partly.body.state, 'running');
    const runs = await request(`${api}/runs`);
    assert.ok((runs.body.items as Array<{ id: string }>).some((each) => each.id === 'run-a'));
    assert.equal(runs.body.more, false);
  });

  it('shows the failed-item ledger of a key and of a run', async () => {
    const key = 'ledger/1';
    const claim = await service.claim(key, { totalItems: 10 });
    const items = guarded.app.get(FailedItemsService);
    for (const index of [2, 5]) {
      await items.skip(key, claim.epoch, index, { id: index }, new Error(`bad item ${index}`), {
        currentIndex: index + 1,
        currentBatchIndex: null,
        processedBatches: null,
        cursor: undefined,
      });
    }
    await service.release(key, claim.epoch);
    await sql(`UPDATE "${schema}".checkpoint SET run_id = 'run-l' WHERE key = $1`, [key]);
    const ledger = await request(`${api}/keys/${enc(key)}/failed-items`);
    assert.equal(ledger.status, 200);
    const rows = ledger.body.items as Array<{ itemIndex: number; errorMessage: string }>;
    assert.deepEqual(
      rows.map((row) => [row.itemIndex, row.errorMessage]),
      [
        [2, 'bad item 2'],
        [5, 'bad item 5'],
      ],
    );
    const ofRun = await request(`${api}/runs/run-l/failed-items?limit=1`);
    assert.equal((ofRun.body.items as unknown[]).length, 1);
    assert.equal(ofRun.body.more, true);
    const next = await request(
      `${api}/runs/run-l/failed-items?limit=1&after=${enc(String(ofRun.body.after))}`,
    );
    assert.deepEqual(
      (next.body.items as Array<{ itemIndex: number }>).map((row) => row.itemIndex),
      [5],
    );
    assert.equal(next.body.more, false);
    assert.equal((await request(`${api}/keys/${enc(key)}`)).body.skippedItems, 2);
    assert.equal((await request(`${api}/runs/run-l/failed-items?limit=0`)).status, 400);
  });

  it('bad queries answer 400 naming the field', async () => {
    for (const [query, field] of [
      ['limit=0', 'limit'],
      ['limit=abc', 'limit'],
      ['offset=1', 'offset'],
      ['state=bogus', 'state'],
      ['colour=red', 'colour'],
    ] as const) {
      const { status, body } = await request(`${api}/keys?${query}`);
      assert.equal(status, 400, query);
      assert.match(JSON.stringify(body.message), new RegExp(field), query);
    }
  });

  it(
    'streams a key as server-sent events: its view once the feed listens, then each change',
    {
      timeout: 60_000,
    },
    async () => {
      const key = 'sse/1';
      // Another process (the open app, with its own session) owns the key and announces its changes.
      const other = open.app.get(CheckpointService);
      const claim = await other.claim(key, { totalItems: 100 });
      // The stream's listening starts with this process's watcher row, held here: whatever is
      // announced meanwhile reaches no listener of the stream's process.
      const holder = new pg.Client({ connectionString: DATABASE_URL });
      const heard = new pg.Client({ connectionString: DATABASE_URL });
      await Promise.all([holder.connect(), heard.connect()]);
      try {
        await heard.query(`LISTEN "${schema}_checkpoint"`);
        const announced = new Promise<void>((resolve) =>
          heard.on('notification', (message) => {
            if (message.payload === key) resolve();
          }),
        );
        await holder.query('BEGIN');
        await holder.query(`LOCK TABLE "${schema}".watcher IN EXCLUSIVE MODE`);
        const stream = openEvents(`${api}/keys/${enc(key)}/events`);
        await waitUntil(
          async () => (await lockWaiters(`${schema}.watcher`)) > 0,
          20_000,
          "the stream's watcher row waiting",
        );
        await other.advance(key, claim.epoch, { currentIndex: 30 });
        await other.release(key, claim.epoch);
        await announced;
        await holder.query('COMMIT');
        // Read once the feed listens, the view has what was announced before; nothing is missed.
        assert.equal((await stream.next()).key?.processedItems, 30);
        const again = await other.claim(key, { totalItems: 100 });
        await other.advance(key, again.epoch, { currentIndex: 60 });
        while (((await stream.next()).key?.processedItems ?? 0) < 60);
        stream.close();
        await other.release(key, again.epoch);
      } finally {
        await holder.end();
        await heard.end();
      }
    },
  );

  it('streams every change after a ready event, once the feed listens', async () => {
    const key = 'sse/all';
    const stream = openEvents(`${api}/events`);
    try {
      assert.deepEqual(await stream.next(), { type: 'ready' });
      const claim = await service.claim(key, { totalItems: 10 });
      let event = await stream.next();
      while (event.key?.key !== key) event = await stream.next();
      assert.equal(event.type, 'key');
      await service.release(key, claim.epoch);
    } finally {
      stream.close();
    }
  });

  it('serves the dashboard page, its style and script from the package, with a strict CSP', async () => {
    const page = await fetch(`${guarded.url}/ops/checkpoints`);
    assert.equal(page.status, 200);
    const csp = page.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self'/);
    const html = await page.text();
    assert.match(html, /<base href="\/ops\/checkpoints\/">/);
    assert.doesNotMatch(html, /https?:\/\//, 'no CDN, no external fonts');
    for (const file of ['dashboard.css', 'dashboard.js']) {
      const response = await fetch(`${guarded.url}/ops/checkpoints/${file}`);
      assert.equal(response.status, 200);
      // The SVG namespace of the throughput chart is a name, not a resource.
      const text = (await response.text()).replaceAll("'http://www.w3.org/2000/svg'", '');
      assert.doesNotMatch(text, /https?:\/\//, file);
    }
  });
});

describe('control endpoints', () => {
  const controls = (key: string, run: string, epoch: number) => [
    { path: `keys/${enc(key)}/pause`, body: undefined },
    { path: `keys/${enc(key)}/resume`, body: undefined },
    { path: `keys/${enc(key)}/cancel`, body: undefined },
    { path: `keys/${enc(key)}/rewind`, body: { toIndex: 0, expectedEpoch: epoch } },
    { path: `runs/${enc(run)}/pause`, body: undefined },
    { path: `runs/${enc(run)}/resume`, body: undefined },
    { path: `runs/${enc(run)}/cancel`, body: undefined },
  ];

  it('without the guard every control endpoint answers 403 and changes nothing', async () => {
    const epoch = await seed('guarded/1', 50, 100, 'run-g');
    await service.pause('guarded/1'); // so that resume would have something to do
    const before = await snapshot();
    for (const { path, body } of controls('guarded/1', 'run-g', epoch)) {
      for (const session of [undefined, 'wrong']) {
        const answer = await send(`${api}/${path}`, { method: 'POST', body, session });
        assert.equal(answer.status, 401, `${path} with session ${session}`);
      }
      const reader = await request(`${api}/${path}`, { method: 'POST', body });
      assert.equal(reader.status, 403, `${path} of a reader`);
      assert.match(String(reader.body.message), /controlGuard refused/);
      // A bad body is refused by the guard first: no hint of what would pass.
      const bad = await request(`${api}/${path}`, { method: 'POST', body: { toIndex: 'x' } });
      assert.equal(bad.status, 403, `${path} with a bad body`);
      const readonly = await request(`${open.url}/readonly/api/${path}`, {
        method: 'POST',
        body,
        session: OPERATOR,
      });
      assert.equal(readonly.status, 403, `${path} on the module without a guard`);
      assert.match(String(readonly.body.message), /controlGuard/);
    }
    assert.deepEqual(await snapshot(), before, 'nothing changed in the database');
    const info = await request(`${open.url}/readonly/api/info`);
    assert.deepEqual(info.body, { controls: false, loginUrl: null });
  });

  it('with the guard each works, and the database shows it', async () => {
    const key = 'guarded/2';
    const epoch = await seed(key, 60, 100, 'run-h');
    const post = (path: string, body?: unknown) =>
      request(`${api}/${path}`, { method: 'POST', body, session: OPERATOR });
    const row = async () =>
      (
        await sql<{ state: string; control: string | null; current_index: string; epoch: string }>(
          `SELECT state, control, current_index, epoch FROM "${schema}".checkpoint WHERE key = $1`,
          [key],
        )
      )[0];

    let answer = await post(`keys/${enc(key)}/pause`);
    assert.equal(answer.status, 200);
    assert.equal(answer.body.state, 'paused');
    assert.deepEqual(await row(), {
      state: 'paused',
      control: 'pause',
      current_index: '60',
      epoch: String(epoch),
    });

    answer = await post(`keys/${enc(key)}/rewind`, { toIndex: 20, expectedEpoch: epoch + 5 });
    assert.equal(answer.status, 409, 'a stale epoch is refused');
    assert.equal((await row())?.current_index, '60');
    answer = await post(`keys/${enc(key)}/rewind`, { toIndex: 20, expectedEpoch: epoch });
    assert.equal(answer.status, 200);
    assert.equal(answer.body.processedItems, 20);
    assert.equal((await row())?.current_index, '20');

    answer = await post(`keys/${enc(key)}/resume`);
    assert.equal(answer.status, 200);
    assert.deepEqual(await row(), {
      state: 'released',
      control: null,
      current_index: '20',
      epoch: String(epoch + 1),
    });
    answer = await post(`keys/${enc(key)}/resume`);
    assert.equal(answer.status, 409, 'nothing to resume');

    answer = await post(`keys/${enc(key)}/cancel`);
    assert.equal(answer.status, 200);
    assert.equal((await row())?.state, 'cancelled');
    assert.equal((await post(`keys/${enc(key)}/pause`)).status, 409);
    assert.equal((await post(`keys/${enc('missing')}/pause`)).status, 404);

    await seed('guarded/3', 10, 100, 'run-h');
    answer = await post(`runs/run-h/pause`);
    assert.equal(answer.status, 200);
    const states = async () =>
      (
        await sql<{ state: string }>(
          `SELECT state FROM "${schema}".checkpoint WHERE run_id = 'run-h' ORDER BY key`,
        )
      ).map((each) => each.state);
    assert.deepEqual(await states(), ['cancelled', 'paused']);
    assert.equal((await post(`runs/run-h/resume`)).status, 200);
    assert.deepEqual(await states(), ['cancelled', 'released']);
    assert.equal((await post(`runs/run-h/cancel`)).status, 200);
    assert.deepEqual(await states(), ['cancelled', 'cancelled']);
    assert.equal((await post(`runs/no-run/cancel`)).status, 404);
  });

  it('bad bodies get 400 naming the field', async () => {
    const key = 'guarded/4';
    const epoch = await seed(key, 30);
    const before = await snapshot();
    for (const [body, field] of [
      [{ toIndex: 'x', expectedEpoch: epoch }, 'toIndex'],
      [{ toIndex: -1, expectedEpoch: epoch }, 'toIndex'],
      [{ toIndex: 1.5, expectedEpoch: epoch }, 'toIndex'],
      [{ toIndex: 0 }, 'expectedEpoch'],
      [{ toIndex: 0, expectedEpoch: epoch, force: true }, 'force'],
      [{ toIndex: 80, expectedEpoch: epoch }, 'item 80'],
    ] as const) {
      const answer = await request(`${api}/keys/${enc(key)}/rewind`, {
        method: 'POST',
        body,
        session: OPERATOR,
      });
      assert.equal(answer.status, 400, JSON.stringify(body));
      assert.match(JSON.stringify(answer.body.message), new RegExp(field), JSON.stringify(body));
    }
    assert.deepEqual(await snapshot(), before, 'nothing changed');
  });
});

describe('access', () => {
  const endpoints = (key: string, run: string) => [
    ['GET', 'info'],
    ['GET', 'keys'],
    ['GET', 'counts'],
    ['GET', `keys/${enc(key)}`],
    ['GET', `keys/${enc(key)}/failed-items`],
    ['GET', `keys/${enc(key)}/events`],
    ['GET', 'runs'],
    ['GET', `runs/${enc(run)}`],
    ['GET', `runs/${enc(run)}/chunks`],
    ['GET', `runs/${enc(run)}/failed-items`],
    ['GET', `runs/${enc(run)}/events`],
    ['GET', 'events'],
    ['POST', `keys/${enc(key)}/pause`],
    ['POST', `keys/${enc(key)}/resume`],
    ['POST', `keys/${enc(key)}/cancel`],
    ['POST', `keys/${enc(key)}/rewind`],
    ['POST', `keys/${enc(key)}/retry`],
    ['POST', `keys/${enc(key)}/redrive`],
    ['POST', `runs/${enc(run)}/redrive`],
    ['POST', `runs/${enc(run)}/pause`],
    ['POST', `runs/${enc(run)}/resume`],
    ['POST', `runs/${enc(run)}/cancel`],
  ];

  it('every endpoint, reads and streams included, answers 401 without a session, marked no-store', async () => {
    await seed('access/1', 10, 100, 'run-access');
    const before = await snapshot();
    for (const [method, path] of endpoints('access/1', 'run-access')) {
      for (const session of [undefined, 'forged']) {
        const answer = await send(`${api}/${path}`, { method, session });
        assert.equal(answer.status, 401, `${method} ${path}`);
        assert.equal(answer.headers.get('cache-control'), 'no-store', `${method} ${path}`);
        assert.doesNotMatch(JSON.stringify(answer.body), /access\/1|run-access/, 'no data');
      }
    }
    assert.deepEqual(await snapshot(), before, 'nothing changed');
    // The page's own files hold no data: anyone gets them, to be told to sign in.
    for (const file of ['', '/dashboard.js', '/dashboard.css']) {
      assert.equal((await fetch(`${guarded.url}/ops/checkpoints${file}`)).status, 200, file);
    }
  });

  it('a reader reads (no-store) and may not control; an operator may', async () => {
    await seed('access/2', 10, 100);
    const read = await request(`${api}/keys/${enc('access/2')}`);
    assert.equal(read.status, 200);
    assert.equal(read.headers.get('cache-control'), 'no-store');
    assert.deepEqual((await request(`${api}/info`)).body, { controls: false, loginUrl: null });
    assert.deepEqual((await request(`${api}/info`, { session: OPERATOR })).body, {
      controls: true,
      loginUrl: null,
    });
    const refused = await request(`${api}/keys/${enc('access/2')}/pause`, { method: 'POST' });
    assert.equal(refused.status, 403);
    assert.equal((await request(`${api}/keys/${enc('access/2')}`)).body.state, 'released');
  });

  it('a cross-site request that changes state is refused whatever the session', async () => {
    await seed('access/3', 10, 100);
    const before = await snapshot();
    const path = `${api}/keys/${enc('access/3')}/pause`;
    for (const headers of <Array<Record<string, string>>>[
      { origin: 'https://evil.example' },
      { origin: 'null' },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site', origin: 'https://sub.127.0.0.1.example' },
      { 'sec-fetch-site': 'cross-site', origin: guarded.url },
    ]) {
      const answer = await request(path, { method: 'POST', session: OPERATOR, headers });
      assert.equal(answer.status, 403, JSON.stringify(headers));
      assert.match(String(answer.body.message), /cross-site request refused/);
    }
    assert.deepEqual(await snapshot(), before, 'nothing changed');
    // The page's own requests (same origin) pass.
    const own = await request(path, {
      method: 'POST',
      session: OPERATOR,
      headers: { origin: guarded.url, 'sec-fetch-site': 'same-origin' },
    });
    assert.equal(own.status, 200);
    assert.equal(own.body.state, 'paused');
  });

  it('a module with no guard says so at bootstrap; a guarded one does not', () => {
    assert.ok(
      openLogs.lines.some((line) => /readonly is mounted WITHOUT A GUARD/.test(line)),
      openLogs.lines.join('\n'),
    );
    assert.ok(!guardedLogs.lines.some((line) => /WITHOUT A GUARD/.test(line)));
  });

  it("an unknown key's or run's stream answers 404 before streaming", async () => {
    for (const path of [`keys/${enc('no such key')}/events`, `runs/${enc('no-run')}/events`]) {
      const answer = await request(`${api}/${path}`);
      assert.equal(answer.status, 404, path);
      assert.match(String(answer.body.message), /no (checkpoint key|run) "no/);
    }
  });
});

/** Backends of the cluster waiting for a lock on `relation` (schema.table). */
async function lockWaiters(relation: string): Promise<number> {
  const [row] = await sql<{ waiting: number }>(
    `SELECT count(*)::int AS waiting FROM pg_locks WHERE NOT granted AND relation = $1::regclass`,
    [relation],
  );
  return row?.waiting ?? 0;
}

/** What an event of the module's streams carries (the fields these tests read). */
interface StreamData {
  type: string;
  key?: { key: string; processedItems: number };
}

/** A server-sent event stream read one event at a time (`next` waits for the next data). */
function openEvents(url: string) {
  const controller = new AbortController();
  const body = fetch(url, {
    signal: controller.signal,
    headers: { cookie: `${SESSION_COOKIE}=${READER}` },
  }).then((response) => {
    assert.equal(response.headers.get('content-type')?.split(';')[0], 'text/event-stream');
    return (response.body as ReadableStream<Uint8Array>).getReader();
  });
  const events = new EventData();
  const waiting: string[] = [];
  return {
    async next(): Promise<StreamData> {
      const reader = await body;
      while (waiting.length === 0) {
        const chunk = await reader.read();
        if (chunk.done) throw new Error('stream ended');
        waiting.push(...events.push(chunk.value));
      }
      return JSON.parse(waiting.shift() as string) as StreamData;
    },
    close: () => controller.abort(),
  };
}
