// Logic that needs no database: option validation, payload checks, batch sizing, progress maths,
// when announcements go.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QueryRunnerAlreadyReleasedError, QueryRunnerProviderAlreadyReleasedError } from 'typeorm';
import { BatchSizer, batchSizeProblems } from '../../src/batch-sizer.js';
import {
  CheckpointConfigError,
  CheckpointFencedError,
  CheckpointLeaseLapsedError,
  CheckpointStoreError,
  CheckpointValidationError,
  isConnectionFailure,
} from '../../src/checkpoint.errors.js';
import { resolveOptions } from '../../src/checkpoint.options.js';
import type { CheckpointRow } from '../../src/checkpoint.repository.js';
import { toProgress } from '../../src/progress/checkpoint-reads.js';
import { assertKey, toJson } from '../../src/checkpoint.validation.js';
import { CheckpointHealthModule } from '../../src/health/index.js';
import { PendingAnnouncements, QUIET_MS } from '../../src/session/pending-announcements.js';

describe('resolveOptions', () => {
  it('applies defaults', () => {
    assert.deepEqual(resolveOptions({}), {
      schema: 'checkpoint',
      migrationsRun: true,
      maxPayloadBytes: 1024 * 1024,
      directThreshold: 50,
      shutdownTimeoutMs: 30_000,
      leaseTtlMs: 30_000,
      statementTimeoutMs: 60_000,
      stallWarnMs: 5_000,
      databaseOutageMs: 60_000,
      boss: undefined,
      // The connection set-up is detected at bootstrap.
      connection: {},
      // Item policies per queue: none unless configured.
      queues: {},
    });
  });

  it('refuses a lease TTL or statement timeout too short to work', () => {
    assert.throws(
      () => resolveOptions({ leaseTtlMs: 500, statementTimeoutMs: 5 }),
      (error: Error) =>
        error instanceof CheckpointConfigError &&
        error.message.includes('leaseTtlMs must be a whole number >= 1000 (got 500)') &&
        error.message.includes('statementTimeoutMs must be a whole number >= 100 (got 5)'),
    );
  });

  it('names every bad option at once', () => {
    assert.throws(
      () => resolveOptions({ schema: 'Bad-Name', maxPayloadBytes: 0, extra: true }),
      (error: Error) =>
        error instanceof CheckpointConfigError &&
        error.message.includes('schema must be a lower-case identifier') &&
        error.message.includes('maxPayloadBytes must be a whole number >= 1 (got 0)') &&
        error.message.includes('unknown option "extra"'),
    );
    assert.throws(() => resolveOptions(null), CheckpointConfigError);
  });
});

describe('CheckpointHealthModule.forRoot', () => {
  it('refuses a stall time or timeout that is not a whole number of milliseconds >= 1', () => {
    for (const options of [{ stallMs: 0 }, { timeoutMs: 0 }, { timeoutMs: 1.5 }, { stallMs: -1 }]) {
      const [name] = Object.keys(options);
      assert.throws(
        () => CheckpointHealthModule.forRoot(options),
        (error: Error) =>
          error instanceof CheckpointConfigError &&
          error.message.includes(`${name} must be a whole number of milliseconds >= 1`),
        JSON.stringify(options),
      );
    }
    assert.doesNotThrow(() => CheckpointHealthModule.forRoot({ stallMs: 1, timeoutMs: 1 }));
  });
});

describe('payload and key checks', () => {
  it('serialises JSON and refuses what has no JSON form or is too large', () => {
    assert.equal(toJson('x', undefined, 10), null);
    assert.equal(toJson('x', { a: 1 }, 100), '{"a":1}');
    assert.throws(
      () => toJson('x', () => 1, 100),
      /x must be JSON-serialisable: x is a function, which JSON drops/,
    );
    assert.throws(() => toJson('x', { n: 1n }, 100), CheckpointValidationError);
    assert.throws(
      () => toJson('x', 'é'.repeat(60), 100),
      /x is 122 bytes as JSON, over the limit of 100 bytes/,
    );
  });

  it('accepts keys of 1 to 512 characters', () => {
    assertKey('k');
    assertKey('k'.repeat(512));
    for (const bad of ['', 'k'.repeat(513), 42, null])
      assert.throws(() => assertKey(bad), CheckpointValidationError);
  });
});

describe('BatchSizer', () => {
  it('keeps a fixed size', () => {
    const sizer = new BatchSizer(50);
    sizer.record(50, 1000);
    assert.equal(sizer.size, 50);
    assert.equal(new BatchSizer(undefined).size, 100);
  });

  it('converges on the time target, growing at most fourfold per batch', () => {
    const sizer = new BatchSizer({ targetMs: 100, min: 1, max: 1000 });
    const sizes = [sizer.size];
    for (let i = 0; i < 8; i++) {
      sizer.record(sizer.size, sizer.size * 0.5); // 0.5 ms per item: 200 items per 100 ms
      sizes.push(sizer.size);
    }
    assert.deepEqual(sizes.slice(0, 3), [10, 40, 160]);
    assert.equal(sizes.at(-1), 200);
  });

  it('stays within min and max', () => {
    const sizer = new BatchSizer({ targetMs: 10, min: 5, max: 20 });
    sizer.record(10, 1000);
    assert.equal(sizer.size, 5);
    for (let i = 0; i < 10; i++) sizer.record(sizer.size, 0.001);
    assert.equal(sizer.size, 20);
  });

  it('explains a bad batchSize option', () => {
    assert.deepEqual(batchSizeProblems(10), []);
    assert.deepEqual(batchSizeProblems(0), ['batchSize must be a whole number >= 1 (got 0)']);
    assert.deepEqual(batchSizeProblems({ targetMs: 0, min: 10, max: 5 }), [
      'batchSize.targetMs must be > 0 (got 0)',
      'batchSize.max must be a whole number >= min (got 5)',
    ]);
  });
});

describe('toProgress', () => {
  const row = (overrides: Partial<CheckpointRow>): CheckpointRow => ({
    key: 'k',
    state: 'running',
    epoch: '1',
    owner: null,
    dispatch: null,
    fingerprint: null,
    current_batch_index: '10',
    current_index: '500',
    processed_batches: '10',
    total_batches: '40',
    total_items: '2000',
    cursor: null,
    intermediate_result: null,
    metadata: null,
    result: null,
    error: null,
    attempt: 2,
    attempt_started_at: new Date('2026-01-01T00:00:00Z'),
    attempt_start_index: '100',
    created_at: new Date('2026-01-01T00:00:00Z'),
    updated_at: new Date('2026-01-01T00:00:04Z'),
    control: null,
    run_id: null,
    queue: null,
    job_id: null,
    skipped_items: '0',
    owner_pid: null,
    owner_started: null,
    lease_expires_at: null,
    redrive_requested_at: null,
    ...overrides,
  });

  it('keeps the original fields and adds rate and ETA for the current attempt', () => {
    const progress = toProgress(row({}));
    assert.equal(progress.currentBatch, 10);
    assert.equal(progress.percentage, 25);
    assert.equal(progress.processedItems, 500);
    assert.equal(progress.itemsPerSecond, 100); // 400 items in 4 s this attempt
    assert.equal(progress.etaSeconds, 15); // 1,500 left
  });

  it('has no rate before the attempt committed anything, and a zero percentage without batches', () => {
    const fresh = toProgress(
      row({ current_index: '100', total_batches: '0', processed_batches: '0' }),
    );
    assert.equal(fresh.itemsPerSecond, null);
    assert.equal(fresh.etaSeconds, null);
    assert.equal(fresh.percentage, 0);
  });
});

describe('isConnectionFailure', () => {
  it('tells a lost or refused connection from an error of the work or the data', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), {
      code: 'ECONNREFUSED',
    });
    const starting = Object.assign(new Error('the database system is starting up'), {
      code: '57P03',
    });
    const terminated = Object.assign(new Error('terminating connection'), { code: '57P01' });
    assert.ok(isConnectionFailure(refused));
    assert.ok(isConnectionFailure(starting));
    assert.ok(isConnectionFailure(terminated));
    assert.ok(isConnectionFailure(new Error('Connection terminated unexpectedly')));
    assert.ok(isConnectionFailure(new CheckpointStoreError('advance', 'k', refused)));
    assert.ok(isConnectionFailure({ message: 'query failed', driverError: { code: '08006' } }));
    assert.ok(isConnectionFailure(new CheckpointLeaseLapsedError('k', 'lapsed')));
    // A runner TypeORM released after its connection failed, used through its manager or itself.
    const released = [
      new QueryRunnerProviderAlreadyReleasedError(),
      new QueryRunnerAlreadyReleasedError(),
    ];
    for (const error of released) {
      assert.ok(isConnectionFailure(new CheckpointStoreError('commit batch', 'k', error)));
    }
    assert.ok(!isConnectionFailure(new Error('boom')));
    assert.ok(!isConnectionFailure(Object.assign(new Error('deadlock'), { code: '40P01' })));
    assert.ok(!isConnectionFailure(new CheckpointStoreError('advance', 'k', new Error('x'))));
    assert.ok(!isConnectionFailure(new CheckpointFencedError('k', 1)));
  });
});

describe('PendingAnnouncements', () => {
  it('holds advances alone after a look found nobody watching, never drops them unsent', () => {
    const pending = new PendingAnnouncements(() => undefined);
    assert.equal(pending.take(0, false), undefined);
    pending.add('a', 'progress');
    // Nothing known yet: the first flush looks.
    assert.deepEqual(pending.take(0, false), { keys: [], advanced: ['a'], controls: [] });
    pending.looked(false, 0);
    pending.add('b', 'progress');
    assert.deepEqual(pending.take(400, false), { waitMs: QUIET_MS - 400 });
    // A process that watches itself, or closing, sends at once.
    assert.deepEqual(pending.take(400, true), { keys: [], advanced: ['b'], controls: [] });
    pending.add('c', 'progress');
    assert.deepEqual(pending.take(500, false, true), { keys: [], advanced: ['c'], controls: [] });
    // A change goes at once, the held advances with it; a key changed is not also "advanced".
    pending.add('d', 'progress');
    pending.add('e', 'progress');
    pending.add('e', 'change');
    assert.deepEqual(pending.take(600, false), { keys: ['e'], advanced: ['d'], controls: [] });
    // The quiet second over, advances go to the next look; a look that found a watcher ends it.
    pending.add('f', 'progress');
    assert.deepEqual(pending.take(QUIET_MS, false), { keys: [], advanced: ['f'], controls: [] });
    pending.looked(true, QUIET_MS);
    pending.add('g', 'progress');
    assert.deepEqual(pending.take(QUIET_MS + 1, false), {
      keys: [],
      advanced: ['g'],
      controls: [],
    });
    pending.addControl('pause:h');
    assert.deepEqual(pending.take(QUIET_MS + 2, false), {
      keys: [],
      advanced: [],
      controls: ['pause:h'],
    });
  });
});
