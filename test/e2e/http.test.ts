// The HTTP module: reading with paging and filters, live server-sent events, and control
// endpoints that exist only behind the application's guard (403 and nothing changed without it;
// 400 naming the field for a bad body).
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CheckpointService, FailedItemsService } from '../../src/index.js';
import { dropSchema, sql, uniqueSchema } from '../support/database.js';
import {
  createHttpApp,
  OPERATOR_TOKEN,
  request,
  TokenGuard,
  type HttpTestApp,
} from '../support/http.js';

const schema = uniqueSchema('http');
let guarded: HttpTestApp;
let open: HttpTestApp;
let service: CheckpointService;
let api: string;

before(async () => {
  guarded = await createHttpApp({ schema, guard: TokenGuard });
  // The same application without a guard: its control endpoints are off.
  open = await createHttpApp({ schema, path: 'readonly' });
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
    await sql(`UPDATE "${schema}".checkpoint SET run_id = $1 WHERE key = $2`, [runId, key]);
  }
  return claim.epoch;
}

const snapshot = () =>
  sql(
    `SELECT key, state, control, epoch, current_index, updated_at FROM "${schema}".checkpoint ORDER BY key`,
  );
const enc = encodeURIComponent;

describe('reading', () => {
  it('lists keys with paging and filters, and shows one', async () => {
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
    // The list of runs reads the run table (runs started with CheckpointRuns).
    await sql(
      `INSERT INTO "${schema}".run (id, queue, state, mode, total_items, chunk_count, chunk_size)
       VALUES ('run-a', 'q', 'running', 'queued', 300, 3, 100)`,
    );
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

  it('streams a key as server-sent events: its view now, then each change', async () => {
    const key = 'sse/1';
    const claim = await service.claim(key, { totalItems: 100 });
    const controller = new AbortController();
    const response = await fetch(`${api}/keys/${enc(key)}/events`, { signal: controller.signal });
    assert.equal(response.headers.get('content-type')?.split(';')[0], 'text/event-stream');
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    const next = async (): Promise<{ key: { processedItems: number } }> => {
      for (;;) {
        const end = buffer.indexOf('\n\n');
        if (end >= 0) {
          const message = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = message
            .split('\n')
            .find((line) => line.startsWith('data: '))
            ?.slice(6);
          if (data !== undefined) return JSON.parse(data) as { key: { processedItems: number } };
          continue;
        }
        const chunk = await reader.read();
        if (chunk.done) throw new Error('stream ended');
        buffer += decoder.decode(chunk.value, { stream: true });
      }
    };
    assert.equal((await next()).key.processedItems, 0);
    await service.advance(key, claim.epoch, { currentIndex: 30 });
    assert.equal((await next()).key.processedItems, 30);
    controller.abort();
    await service.release(key, claim.epoch);
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
      assert.doesNotMatch(await response.text(), /https?:\/\//, file);
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
      for (const token of [undefined, 'wrong']) {
        const answer = await request(`${api}/${path}`, { method: 'POST', body, token });
        assert.equal(answer.status, 403, `${path} with token ${token}`);
      }
      // A bad body is refused by the guard first: no hint of what would pass.
      const bad = await request(`${api}/${path}`, { method: 'POST', body: { toIndex: 'x' } });
      assert.equal(bad.status, 403, `${path} with a bad body`);
      const readonly = await request(`${open.url}/readonly/api/${path}`, {
        method: 'POST',
        body,
        token: OPERATOR_TOKEN,
      });
      assert.equal(readonly.status, 403, `${path} on the module without a guard`);
      assert.match(String(readonly.body.message), /guard/);
    }
    assert.deepEqual(await snapshot(), before, 'nothing changed in the database');
    const info = await request(`${open.url}/readonly/api/info`);
    assert.deepEqual(info.body, { controls: false });
  });

  it('with the guard each works, and the database shows it', async () => {
    const key = 'guarded/2';
    const epoch = await seed(key, 60, 100, 'run-h');
    const post = (path: string, body?: unknown) =>
      request(`${api}/${path}`, { method: 'POST', body, token: OPERATOR_TOKEN });
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
        token: OPERATOR_TOKEN,
      });
      assert.equal(answer.status, 400, JSON.stringify(body));
      assert.match(JSON.stringify(answer.body.message), new RegExp(field), JSON.stringify(body));
    }
    assert.deepEqual(await snapshot(), before, 'nothing changed');
  });
});
