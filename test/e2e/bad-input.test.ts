// Bad input, walked over every public method of CheckpointService: each one is refused with
// CheckpointValidationError naming the field, and nothing is written (the whole table is
// compared before and after each call). Then the counts the bigint columns hold, round trips.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { INestApplicationContext } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import {
  CheckpointService,
  CheckpointStoreError,
  CheckpointValidationError,
  type CheckpointData,
} from '../../src/index.js';
import { createTestApp } from '../support/app.js';
import { dropSchema, sql, uniqueSchema } from '../support/database.js';

const schema = uniqueSchema('bad_input');
let app: INestApplicationContext;
let service: CheckpointService;
/** A key this process owns, so that a write with a good epoch would change it. */
const owned = 'attack:owned';
let epoch: number;
/** The manager of a transaction that has committed: its runner is released. */
let endedManager: EntityManager;

before(async () => {
  app = await createTestApp({ schema });
  service = app.get(CheckpointService);
  await service.saveCheckpoint('attack:saved', valid());
  epoch = (await service.claim(owned, { totalItems: 100, fingerprint: 'f1' })).epoch;
  await service.advance(owned, epoch, { currentIndex: 10, totalItems: 100 });
  await app.get(DataSource).transaction((manager) => {
    endedManager = manager;
    return Promise.resolve();
  });
});

after(async () => {
  await app.close();
  await dropSchema(schema);
});

function valid(): CheckpointData {
  return { currentBatchIndex: 1, currentIndex: 10, processedBatches: 1, totalBatches: 10 };
}

/**
 * Every row, every column a call may write: a bad call must leave this exactly as it was. The
 * lease renewal's columns are left out: its timer rightly moves them whenever the attack loop
 * runs longer than a third of the lease TTL (a busy machine), which no call under test did.
 */
async function snapshot(): Promise<string> {
  const rows = await sql<{ all: string | null }>(
    `SELECT string_agg((to_jsonb(c) - 'lease_expires_at' - 'owner_pid' - 'owner_started')::text,
                       E'\\n' ORDER BY key) AS all
       FROM "${schema}".checkpoint c`,
  );
  return rows[0]?.all ?? '';
}

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
}
const cycle: Record<string, unknown> = { a: 1 };
cycle.self = cycle;
const deep: unknown[] = [];
let cursor: unknown[] = deep;
for (let i = 0; i < 600; i++) {
  const next: unknown[] = [];
  cursor.push(next);
  cursor = next;
}

const holey: unknown[] = [1];
holey[2] = 3;

const BAD_KEYS: Array<[string, unknown, RegExp]> = [
  ['empty', '', /checkpoint key must be a non-empty string of at most 512 characters \(got ""\)/],
  [
    '513 characters',
    'k'.repeat(513),
    /checkpoint key must be .* \(got a string of 513 characters\)/,
  ],
  ['a NUL', 'a\u0000b', /checkpoint key holds a NUL character at position 1/],
  [
    'a lone high surrogate',
    'a\uD800',
    /checkpoint key holds a lone UTF-16 surrogate at position 1/,
  ],
  ['another lone high surrogate', 'a\uDBFF', /checkpoint key holds a lone UTF-16 surrogate/],
  ['a lone low surrogate', '\uDC00z', /checkpoint key holds a lone UTF-16 surrogate at position 0/],
  ['a number', 42, /checkpoint key must be .* \(got 42\)/],
  ['null', null, /checkpoint key must be .* \(got null\)/],
  ['undefined', undefined, /checkpoint key must be .* \(got undefined\)/],
  ['an object', { key: 'k' }, /checkpoint key must be .* \(got object\)/],
];

const BAD_EPOCHS: Array<[string, unknown]> = [
  ['0', 0],
  ['-1', -1],
  ['1.5', 1.5],
  ['NaN', Number.NaN],
  ['Infinity', Number.POSITIVE_INFINITY],
  ['2^53', 2 ** 53],
  ['a string', '1'],
  ['null', null],
  ['undefined', undefined],
];

const BAD_PAYLOADS: Array<[string, unknown, RegExp]> = [
  ['NaN', Number.NaN, /is NaN, which JSON stores as null/],
  ['Infinity', Number.POSITIVE_INFINITY, /is Infinity, which JSON stores as null/],
  ['-Infinity inside', { total: Number.NEGATIVE_INFINITY }, /\.total is -Infinity/],
  ['NaN deep inside', { a: [{ b: Number.NaN }] }, /\.a\[0\]\.b is NaN/],
  ['a function', () => 1, /is a function, which JSON drops/],
  ['a function inside', { f: () => 1 }, /\.f is a function, which JSON drops/],
  ['a symbol inside', { s: Symbol('s') }, /\.s is a symbol, which JSON drops/],
  ['symbol keys', { [Symbol('k')]: 1 }, /has symbol keys, which JSON drops/],
  ['undefined in an array', [1, undefined], /\[1\] is undefined, which JSON stores as null/],
  ['a hole in an array', holey, /\[1\] is undefined/],
  ['a BigInt', { n: 10n }, /\.n is a BigInt, which JSON cannot hold: store it as a string/],
  ['a Date', { at: new Date(0) }, /\.at is a Date, .*store date\.toISOString\(\)/],
  ['a Map', new Map([['a', 1]]), /is a Map, which would come back from JSON as something else/],
  ['a Set inside', { s: new Set([1]) }, /\.s is a Set/],
  ['a class instance', new Point(1, 2), /is a Point, which would come back/],
  ['an object with toJSON', { toJSON: () => 'x' }, /has a toJSON\(\) method/],
  ['a cycle', cycle, /\.self refers back to itself \(a cycle\)/],
  ['nesting 600 deep', deep, /nests deeper than 512 levels/],
  ['a NUL in a string', { note: 'a\u0000b' }, /\.note holds a NUL character at position 1/],
  ['a lone surrogate in a string', ['ok', 'x\uD800'], /\[1\] holds a lone UTF-16 surrogate/],
  ['a NUL in a property name', { 'k\u0000': 1 }, /has a property name with a NUL character/],
  ['a lone surrogate in a property name', { '\uDC00': 1 }, /has a property name with a lone/],
];

const BAD_COUNTS: Array<[string, unknown]> = [
  ['-1', -1],
  ['1.5', 1.5],
  ['NaN', Number.NaN],
  ['Infinity', Number.POSITIVE_INFINITY],
  ['2^53', 2 ** 53],
  ['a string', '5'],
  ['null', null],
];

interface Attack {
  name: string;
  call: () => unknown;
  message: RegExp;
}

const attacks: Attack[] = [];

// 1. Every method that takes a key, with every bad key.
const byKey: Array<[string, (key: never) => unknown]> = [
  ['saveCheckpoint', (key) => service.saveCheckpoint(key, valid())],
  ['loadCheckpoint', (key) => service.loadCheckpoint(key)],
  ['clearCheckpoint', (key) => service.clearCheckpoint(key)],
  ['getProgress', (key) => service.getProgress(key)],
  ['canResume', (key) => service.canResume(key)],
  ['claim', (key) => service.claim(key)],
  ['advance', (key) => service.advance(key, epoch, { currentIndex: 20 })],
  ['complete', (key) => service.complete(key, epoch, { done: true })],
  ['fail', (key) => service.fail(key, epoch, new Error('x'))],
  ['release', (key) => service.release(key, epoch)],
  ['restart', (key) => service.restart(key, epoch, 'f2')],
  ['setFingerprint', (key) => service.setFingerprint(key, epoch, 'f2')],
  ['find', (key) => service.find(key)],
  ['watch', (key) => service.watch(key)],
  ['pause', (key) => service.pause(key)],
  ['resume', (key) => service.resume(key)],
  ['cancel', (key) => service.cancel(key)],
  ['rewind', (key) => service.rewind(key, 0, { expectedEpoch: epoch })],
];
for (const [method, call] of byKey) {
  for (const [label, key, message] of BAD_KEYS) {
    attacks.push({ name: `${method}: key ${label}`, call: () => call(key as never), message });
  }
}

// 2. Every ownership call, with every bad epoch (on a key this process owns).
const byEpoch: Array<[string, (epoch: never) => unknown]> = [
  ['advance', (bad) => service.advance(owned, bad, { currentIndex: 20 })],
  ['complete', (bad) => service.complete(owned, bad)],
  ['fail', (bad) => service.fail(owned, bad, new Error('x'))],
  ['release', (bad) => service.release(owned, bad)],
  ['restart', (bad) => service.restart(owned, bad)],
  ['setFingerprint', (bad) => service.setFingerprint(owned, bad, 'f2')],
];
for (const [method, call] of byEpoch) {
  for (const [label, bad] of BAD_EPOCHS) {
    attacks.push({
      name: `${method}: epoch ${label}`,
      call: () => call(bad as never),
      message: /epoch must be the positive whole number that claim\(\) returned/,
    });
  }
}

// 3. Every payload field, with every value JSON cannot hold exactly.
const byPayload: Array<[string, string, (value: unknown) => unknown]> = [
  [
    'saveCheckpoint',
    'intermediateResult',
    (value) => service.saveCheckpoint(owned, { ...valid(), intermediateResult: value }),
  ],
  [
    'saveCheckpoint',
    'metadata',
    (value) => service.saveCheckpoint(owned, { ...valid(), metadata: { wrapped: value } }),
  ],
  [
    'advance',
    'intermediateResult',
    (value) => service.advance(owned, epoch, { currentIndex: 20, intermediateResult: value }),
  ],
  [
    'advance',
    'cursor',
    (value) => service.advance(owned, epoch, { currentIndex: 20, cursor: value }),
  ],
  ['complete', 'result', (value) => service.complete(owned, epoch, value)],
];
for (const [method, field, call] of byPayload) {
  for (const [label, value, message] of BAD_PAYLOADS) {
    attacks.push({
      name: `${method}: ${field} ${label}`,
      call: () => call(value),
      message: new RegExp(`${field} must be JSON-serialisable: ${field}.*${message.source}`),
    });
  }
}

// 4. Every count, with every bad number.
const countFields = ['currentBatchIndex', 'currentIndex', 'processedBatches', 'totalBatches'];
for (const field of countFields) {
  for (const [label, bad] of BAD_COUNTS) {
    attacks.push({
      name: `saveCheckpoint: ${field} ${label}`,
      call: () => service.saveCheckpoint(owned, { ...valid(), [field]: bad }),
      message: new RegExp(`^${field} must be a whole number from 0 to Number.MAX_SAFE_INTEGER`),
    });
  }
}
for (const field of ['currentIndex', 'currentBatchIndex', 'processedBatches', 'totalItems']) {
  for (const [label, bad] of BAD_COUNTS) {
    if (field !== 'currentIndex' && bad === null) continue;
    attacks.push({
      name: `advance: ${field} ${label}`,
      call: () => service.advance(owned, epoch, { currentIndex: 20, [field]: bad }),
      message: new RegExp(`^${field} must be a whole number from 0 to Number.MAX_SAFE_INTEGER`),
    });
  }
}
for (const [label, bad] of BAD_COUNTS) {
  attacks.push({
    name: `rewind: toIndex ${label}`,
    call: () => service.rewind(owned, bad as never, { expectedEpoch: epoch }),
    message: /^toIndex must be a whole number from 0 to Number.MAX_SAFE_INTEGER/,
  });
}
for (const field of ['totalItems', 'dispatch']) {
  for (const [label, bad] of BAD_COUNTS.filter(([, value]) => value !== null)) {
    attacks.push({
      name: `claim: ${field} ${label}`,
      call: () => service.claim('attack:new', { [field]: bad }),
      message: new RegExp(`^${field} must be a whole number`),
    });
  }
}

// 5. Whole arguments, strings stored in text columns, filters and cross-field rules.
attacks.push(
  {
    name: 'saveCheckpoint: no checkpoint',
    call: () => service.saveCheckpoint(owned, null as never),
    message: /^checkpoint must be an object \(got null\)/,
  },
  {
    name: 'advance: no progress',
    call: () => service.advance(owned, epoch, undefined as never),
    message: /^progress must be an object \(got undefined\)/,
  },
  {
    name: 'saveCheckpoint: processedBatches over totalBatches',
    call: () => service.saveCheckpoint(owned, { ...valid(), processedBatches: 11 }),
    message: /processedBatches \(11\) cannot exceed totalBatches \(10\)/,
  },
  {
    name: 'advance: currentIndex beyond totalItems',
    call: () => service.advance(owned, epoch, { currentIndex: 300, totalItems: 250 }),
    message: /^currentIndex \(300\) cannot exceed totalItems \(250\)/,
  },
  {
    name: 'advance: processedBatches over totalBatches',
    call: () =>
      service.advance(owned, epoch, { currentIndex: 20, processedBatches: 5, totalBatches: 4 }),
    message: /processedBatches \(5\) cannot exceed totalBatches \(4\)/,
  },
  {
    name: 'restart: fingerprint with a NUL',
    call: () => service.restart(owned, epoch, 'f\u0000'),
    message: /^fingerprint holds a NUL character/,
  },
  {
    name: 'setFingerprint: empty fingerprint',
    call: () => service.setFingerprint(owned, epoch, ''),
    message: /^fingerprint must be a non-empty string/,
  },
  {
    name: 'setFingerprint: fingerprint with a lone surrogate',
    call: () => service.setFingerprint(owned, epoch, '\uD800'),
    message: /^fingerprint holds a lone UTF-16 surrogate/,
  },
  ...(['owner', 'fingerprint', 'queue', 'jobId'] as const).flatMap((field) => [
    {
      name: `claim: ${field} with a lone surrogate`,
      call: () => service.claim('attack:new', { [field]: 'x\uDBFF' }),
      message: new RegExp(`^${field} holds a lone UTF-16 surrogate`),
    },
    {
      name: `claim: ${field} not a string`,
      call: () => service.claim('attack:new', { [field]: 7 as never }),
      message: new RegExp(`^${field} must be a non-empty string`),
    },
  ]),
  {
    name: 'list: unknown state',
    call: () => service.list({ state: 'done' as never }),
    message: /^state must be one of pending, running, .* \(got "done"\)/,
  },
  {
    name: 'list: limit 1.5',
    call: () => service.list({ limit: 1.5 }),
    message: /^limit must be a whole number/,
  },
  {
    name: 'purge: unknown state',
    call: () => service.purge({ olderThan: { days: 1 }, state: 'old' as never }),
    message: /^state must be one of/,
  },
  {
    name: 'purge: invalid date',
    call: () => service.purge({ olderThan: new Date('nonsense') }),
    message: /^purge: olderThan is an invalid Date/,
  },
  {
    name: 'purge: NaN days',
    call: () => service.purge({ olderThan: { days: Number.NaN } }),
    message: /^purge: olderThan\.days must be a finite number >= 0 \(got NaN\)/,
  },
  ...(
    [
      ['saveCheckpoint', (options: never) => service.saveCheckpoint('attack:tx', valid(), options)],
      ['advance', (options: never) => service.advance(owned, epoch, { currentIndex: 50 }, options)],
      ['complete', (options: never) => service.complete(owned, epoch, 'done', options)],
    ] as const
  ).flatMap(([method, call]) => [
    {
      name: `${method}: options not an object`,
      call: () => call(7 as never),
      message: new RegExp(`^${method}: options must be an object \\(got 7\\)`),
    },
    {
      name: `${method}: manager not an EntityManager`,
      call: () => call({ manager: { query: 'no' } } as never),
      message: new RegExp(`^${method}: manager must be a TypeORM EntityManager`),
    },
  ]),
  {
    name: 'purge: no age',
    call: () => service.purge(undefined as never),
    message: /^purge: olderThan must be a Date or/,
  },
);

describe('bad input on every public method', () => {
  it(`refuses ${attacks.length} bad inputs with CheckpointValidationError naming the field, writing nothing`, async (t) => {
    const before = await snapshot();
    assert.match(before, /attack:owned/);
    const accepted: string[] = [];
    for (const attack of attacks) {
      let error: unknown;
      try {
        // watch() refuses at once, before there is anything to subscribe to.
        await attack.call();
      } catch (caught) {
        error = caught;
      }
      if (!(error instanceof CheckpointValidationError) || !attack.message.test(error.message)) {
        accepted.push(
          `${attack.name}: ${error instanceof Error ? `${error.name}: ${error.message}` : 'no error'}`,
        );
        continue;
      }
      assert.equal(await snapshot(), before, `${attack.name} wrote to the table`);
    }
    assert.deepEqual(accepted, [], `not refused as documented:\n${accepted.join('\n')}`);
    t.diagnostic(`${attacks.length} bad inputs refused, nothing written`);
    // The owned key is still usable with its epoch: nothing was fenced or released.
    await service.advance(owned, epoch, { currentIndex: 20, totalItems: 100 });
    assert.equal((await service.find(owned))?.currentIndex, 20);
  });

  it('keeps what JSON holds exactly: -0 as 0, undefined properties left out, unicode intact', async () => {
    const value = {
      zero: -0,
      gone: undefined,
      text: 'ok \uD83D\uDE00 é',
      nested: [null, true, 1.5],
    };
    await service.saveCheckpoint('attack:exact', { ...valid(), intermediateResult: value });
    const loaded = await service.loadCheckpoint('attack:exact');
    assert.deepEqual(loaded?.intermediateResult, {
      zero: 0,
      text: 'ok \uD83D\uDE00 é',
      nested: [null, true, 1.5],
    });
  });

  it('records a failure whatever its message holds', async () => {
    const key = 'attack:failing';
    const claim = await service.claim(key);
    await service.fail(key, claim.epoch, new Error('bad byte \u0000 and \uD800 here'));
    const record = await service.find(key);
    assert.equal(record?.state, 'failed');
    assert.match((record?.error as { message: string }).message, /bad byte \uFFFD and \uFFFD here/);
  });
});

describe('a manager whose transaction has ended', () => {
  it('is refused with CheckpointStoreError naming it, and nothing is written through it', async () => {
    const before = await snapshot();
    for (const [method, call] of [
      [
        'saveCheckpoint',
        () => service.saveCheckpoint('attack:tx', valid(), { manager: endedManager }),
      ],
      [
        'advance',
        () => service.advance(owned, epoch, { currentIndex: 50 }, { manager: endedManager }),
      ],
      ['complete', () => service.complete(owned, epoch, 'done', { manager: endedManager })],
    ] as const) {
      // Its connection is back in the pool: a write on it would commit outside any transaction.
      await assert.rejects(call(), (error: unknown) => {
        assert.ok(error instanceof CheckpointStoreError, `${method}: ${String(error)}`);
        assert.match(
          error.message,
          /failed in the database: the transaction of the manager given has ended/,
        );
        return true;
      });
      assert.equal(await snapshot(), before, `${method} wrote to the table`);
    }
  });
});

describe('counts up to Number.MAX_SAFE_INTEGER (bigint columns)', () => {
  for (const [label, n] of [
    ['2^31', 2 ** 31],
    ['2^40', 2 ** 40],
    ['2^53 - 1', Number.MAX_SAFE_INTEGER],
  ] as const) {
    it(`round-trips ${label} through saveCheckpoint and advance`, async () => {
      await service.saveCheckpoint(`count:${label}`, {
        currentBatchIndex: n,
        currentIndex: n,
        processedBatches: n - 1,
        totalBatches: n,
      });
      assert.deepEqual(await service.loadCheckpoint(`count:${label}`), {
        currentBatchIndex: n,
        currentIndex: n,
        processedBatches: n - 1,
        totalBatches: n,
        lastUpdate: (await service.loadCheckpoint(`count:${label}`))?.lastUpdate,
      });
      const key = `advance:${label}`;
      const claim = await service.claim(key, { totalItems: n });
      await service.advance(key, claim.epoch, {
        currentIndex: n,
        currentBatchIndex: n - 1,
        processedBatches: n - 1,
        totalBatches: n,
        totalItems: n,
      });
      const progress = await service.getProgress(key);
      assert.equal(progress?.processedItems, n);
      assert.equal(progress?.totalItems, n);
      assert.equal(progress?.totalBatches, n);
      await service.complete(key, claim.epoch);
    });
  }
});
