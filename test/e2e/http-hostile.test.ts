// Hostile requests to every endpoint and field of the HTTP module, as an operator's curl or an
// attacker would send them: NUL bytes, lone surrogates, 2^63 and 1e308, wrong types, arrays and
// objects where strings go, JSON nested 5,000 levels deep, malformed JSON, forged paging tokens.
// Not one answers 5xx, no body carries PostgreSQL's text, every 400 names its field, nothing in
// the database changes, and nothing is logged as an error.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { CheckpointService, FailedItemsService } from '../../src/index.js';
import { dropSchema, sql, uniqueSchema } from '../support/database.js';
import {
  CapturingLogger,
  createHttpApp,
  OPERATOR,
  OperatorGuard,
  request,
  SessionGuard,
  type HttpTestApp,
} from '../support/http.js';

const schema = uniqueSchema('http_hostile');
const logs = new CapturingLogger();
let http: HttpTestApp;
let api: string;
let epoch: number;
const KEY = 'hostile/1';
const RUN = 'run-hostile';
const CLEAN = 'hostile/clean';
const CLEAN_RUN = 'run-clean';

before(async () => {
  http = await createHttpApp({
    schema,
    guard: SessionGuard,
    controlGuard: OperatorGuard,
    logger: logs,
  });
  api = `${http.url}/ops/checkpoints/api`;
  const service = http.app.get(CheckpointService);
  const claim = await service.claim(KEY, { totalItems: 100 });
  epoch = claim.epoch;
  await service.advance(KEY, epoch, { currentIndex: 40, processedBatches: 4 });
  await http.app.get(FailedItemsService).skip(KEY, epoch, 40, { id: 40 }, new Error('bad'), {
    currentIndex: 41,
    currentBatchIndex: null,
    processedBatches: null,
    cursor: undefined,
  });
  await service.release(KEY, epoch);
  // Runs as CheckpointRuns.start() writes them: a row of the run table, its chunks tagged.
  for (const id of [RUN, CLEAN_RUN]) {
    await sql(
      `INSERT INTO "${schema}".run (id, queue, state, mode, total_items, chunk_count, chunk_size)
       VALUES ($1, 'q', 'running', 'queued', 100, 1, 100)`,
      [id],
    );
  }
  await sql(`UPDATE "${schema}".checkpoint SET run_id = $1 WHERE key = $2`, [RUN, KEY]);
  // A key and a run with empty ledgers: a body that passes asks a redrive that has nothing to do.
  const other = await service.claim(CLEAN, { totalItems: 10 });
  await service.release(CLEAN, other.epoch);
  await sql(`UPDATE "${schema}".checkpoint SET run_id = $1 WHERE key = $2`, [CLEAN_RUN, CLEAN]);
});

after(async () => {
  await http.app.close();
  await dropSchema(schema);
});

const snapshot = async () =>
  (
    await sql<{ all: string | null }>(
      `SELECT string_agg(c::text, E'\\n' ORDER BY key) AS all FROM "${schema}".checkpoint c`,
    )
  )[0]?.all;

const token = (parts: unknown) => Buffer.from(JSON.stringify(parts)).toString('base64url');

/** Path segments a key or a run id may be given as (already URL-encoded). */
const SEGMENTS = [
  '%00',
  'a%00b',
  encodeURIComponent('x'.repeat(600)),
  '%ED%A0%80', // a lone surrogate in UTF-8 (invalid)
  '%',
  '%ZZ',
  '%C0%AF',
  '..%2F..%2Fetc',
  encodeURIComponent('\u{1F600}'),
  encodeURIComponent(' '),
];

/** Values of numeric query fields. */
const NUMBERS = [
  '9223372036854775808',
  '9223372036854775807',
  '1e308',
  '-1e308',
  '1.5',
  '-1',
  '0',
  'NaN',
  'Infinity',
  'abc',
  '%00',
  '0x10',
  '',
];

/** Values of text query fields. */
const TEXTS = [
  '%00',
  'a%00',
  encodeURIComponent('x'.repeat(600)),
  '%ED%A0%80',
  '%',
  "'%3B DROP TABLE checkpoint%3B--",
  '%5C',
  '',
];

/** Forged `after` tokens: each must be refused (400), never reach PostgreSQL. */
const TOKENS = [
  'not-a-token',
  token(['not a time', 'k']),
  token(['2026-13-45 99:99:99+00', 'k']),
  token(['2026-02-31 00:00:00+00', 'k']),
  token(['10000-01-01 00:00:00+00', 'k']),
  token(['2026-01-01 00:00:00+00', 'a\u0000b']),
  token(['2026-01-01 00:00:00+00', 7]),
  token(['2026-01-01 00:00:00+00']),
  token({ a: 1 }),
  token([KEY, 2 ** 63]),
  token([KEY, -1]),
  token([KEY, 1e308]),
  token([KEY, '1']),
  token(['\uD800', 1]),
];

/** Bodies for the POST endpoints that take one. */
function bodies(): Array<{ raw?: string; body?: unknown; type?: string }> {
  const deep = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
  const values: unknown[] = [
    2 ** 63,
    1e308,
    -1e308,
    -1,
    1.5,
    '1',
    true,
    null,
    [],
    {},
    'a\u0000b',
    [1, 2],
    { $gt: 0 },
  ];
  const out: Array<{ raw?: string; body?: unknown; type?: string }> = [];
  for (const value of values) {
    out.push({ body: { toIndex: value, expectedEpoch: epoch } });
    out.push({ body: { toIndex: 0, expectedEpoch: value } });
    out.push({ body: { items: value } });
    out.push({ body: { items: [value] } });
  }
  out.push({ raw: `{"toIndex":${deep(5000)},"expectedEpoch":1}` });
  out.push({ raw: `{"items":[${deep(5000)}]}` });
  out.push({ raw: '['.repeat(5000) + ']'.repeat(5000) });
  out.push({ raw: '{"toIndex": 0, "expectedEpoch": ' });
  out.push({ raw: '{"toIndex":"\\u0000","expectedEpoch":1}' });
  out.push({ raw: '{"__proto__":{"toIndex":0},"expectedEpoch":1}' });
  out.push({ raw: '{"constructor":{"prototype":{"x":1}}}' });
  out.push({ raw: 'toIndex=0&expectedEpoch=1', type: 'application/x-www-form-urlencoded' });
  out.push({ raw: 'toIndex=0', type: 'text/plain' });
  out.push({ raw: JSON.stringify({ items: Array.from({ length: 5000 }, (_, i) => i) }) });
  out.push({ raw: '"just a string"' });
  out.push({ raw: 'null' });
  out.push({ raw: '12' });
  return out;
}

const POSTGRES_TEXT =
  /invalid byte sequence|out of range|syntax error|violates|relation "|column "|QueryFailedError|SQLSTATE|bigint|timestamp|invalid input/i;

describe('hostile requests to the HTTP module', () => {
  it('none answers 5xx or shows PostgreSQL text; 400s name their field; nothing changes', async (t: TestContext) => {
    const before = await snapshot();
    const requests: Array<{
      method: string;
      url: string;
      raw?: string;
      body?: unknown;
      type?: string;
      field?: string;
    }> = [];
    const get = (url: string, field?: string) => requests.push({ method: 'GET', url, field });

    // Path segments of every endpoint that names a key or a run.
    const keyPaths = ['', '/failed-items', '/events'];
    const runPaths = ['', '/chunks', '/failed-items', '/events', '/throughput'];
    const posts = ['pause', 'resume', 'cancel', 'rewind', 'retry', 'redrive'];
    const runPosts = ['pause', 'resume', 'cancel', 'redrive'];
    for (const segment of SEGMENTS) {
      for (const path of keyPaths) get(`${api}/keys/${segment}${path}`);
      for (const path of runPaths) get(`${api}/runs/${segment}${path}`);
      for (const action of posts)
        requests.push({ method: 'POST', url: `${api}/keys/${segment}/${action}`, body: {} });
      for (const action of runPosts)
        requests.push({ method: 'POST', url: `${api}/runs/${segment}/${action}`, body: {} });
      requests.push({ method: 'GET', url: `${api}/${segment}` });
      requests.push({ method: 'GET', url: `${http.url}/ops/checkpoints/${segment}` });
    }
    // Every query field of every list.
    const lists = [
      `${api}/keys`,
      `${api}/runs`,
      `${api}/runs/${RUN}/chunks`,
      `${api}/keys/${encodeURIComponent(KEY)}/failed-items`,
      `${api}/runs/${RUN}/failed-items`,
    ];
    for (const list of lists) {
      for (const value of NUMBERS)
        get(`${list}?limit=${value}`, value === '' ? undefined : 'limit');
      for (const value of NUMBERS) get(`${list}?offset=${value}`, 'offset');
      for (const value of TOKENS) get(`${list}?after=${value}`, 'after');
      for (const value of TEXTS.slice(0, 5)) get(`${list}?after=${value}`, 'after');
      get(`${list}?limit=1&limit=2`, 'limit');
      get(`${list}?limit[a]=1`, 'limit');
      get(`${list}?after[]=a&after[]=b`, 'after');
      get(`${list}?colour=red`, 'colour');
      get(`${list}?a[b][c][d][e][f][g][h]=1`);
    }
    for (const value of NUMBERS)
      get(`${api}/runs/${RUN}/throughput?slices=${value}`, value === '' ? undefined : 'slices');
    get(`${api}/runs/${RUN}/throughput?slices=1`, 'slices');
    get(`${api}/runs/${RUN}/throughput?slices=201`, 'slices');
    for (const field of ['state', 'runId', 'queue', 'search']) {
      for (const value of TEXTS) get(`${api}/keys?${field}=${value}`, value === '' ? field : field);
      get(`${api}/keys?${field}[]=a&${field}[]=b`, field);
      get(`${api}/keys?${field}[x]=a`, field);
    }
    // Bodies of every POST that reads one, and of those that read none.
    for (const body of bodies()) {
      for (const path of [
        `keys/${encodeURIComponent(KEY)}/rewind`,
        `keys/${encodeURIComponent(CLEAN)}/redrive`,
        `runs/${CLEAN_RUN}/redrive`,
        `keys/${encodeURIComponent(KEY)}/retry`,
      ]) {
        requests.push({ method: 'POST', url: `${api}/${path}`, ...body });
      }
    }
    // Methods the API does not have.
    for (const method of ['PUT', 'DELETE', 'PATCH']) {
      requests.push({ method, url: `${api}/keys/${encodeURIComponent(KEY)}` });
    }

    const statuses = new Map<number, number>();
    const bad: string[] = [];
    for (const each of requests) {
      const answer = await request(each.url, {
        method: each.method,
        session: OPERATOR,
        body: each.body,
        raw: each.raw,
        headers: each.type === undefined ? {} : { 'content-type': each.type },
      });
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
      const what = `${each.method} ${each.url.replace(http.url, '')} ${(each.raw ?? JSON.stringify(each.body) ?? '').slice(0, 80)}`;
      const text = JSON.stringify(answer.body);
      if (answer.status >= 500) bad.push(`${answer.status} ${what}: ${text.slice(0, 200)}`);
      else if (POSTGRES_TEXT.test(text.replace(/bigint columns|timestamp of/g, '')))
        bad.push(`PostgreSQL text: ${what}: ${text.slice(0, 200)}`);
      else if (answer.status === 400 && each.field !== undefined && !text.includes(each.field))
        bad.push(`400 without naming ${each.field}: ${what}: ${text.slice(0, 200)}`);
      else if (answer.status < 400 && each.method !== 'GET')
        bad.push(`accepted: ${answer.status} ${what}`);
    }
    t.diagnostic(
      `${requests.length} hostile requests: ${[...statuses].map(([s, n]) => `${n} x ${s}`).join(', ')}`,
    );
    assert.deepEqual(bad, []);
    assert.equal(await snapshot(), before, 'nothing changed');
    assert.deepEqual(
      logs.lines.filter((line) => line.startsWith('error')),
      [],
      'nothing logged as a server error',
    );
  });
});
