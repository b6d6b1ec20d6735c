// Retry and skip policies: matching, backoff, limits, option checks, and the decisions the batch
// loop takes after a failure. No database needed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffDelay, itemPolicyProblems, matches, skipAllowance } from '../../src/item-policy.js';
import { ItemRecovery, type OpenBatch } from '../../src/items/item-recovery.js';

class Transient extends Error {}
class Refused extends Error {}
class SubRefused extends Refused {}

const batch = (
  startIndex: number,
  count: number,
  mode: OpenBatch['mode'] = 'batch',
): OpenBatch => ({
  startIndex,
  count,
  mode,
  item: startIndex,
  cursor: undefined,
});

describe('item policies', () => {
  it('match errors by class (subclasses included) or by predicate', () => {
    assert.equal(matches([Refused], new SubRefused()), true);
    assert.equal(matches([Refused], new Transient()), false);
    assert.equal(
      matches((error) => (error as Error).message === 'x', new Error('x')),
      true,
    );
    assert.equal(
      matches(() => {
        throw new Error('predicate bug');
      }, new Error()),
      false,
      'a predicate that throws names nothing',
    );
  });

  it('back off exponentially up to the maximum, with optional jitter', () => {
    const backoff = { initialMs: 100, factor: 3, maxMs: 1000 };
    assert.deepEqual(
      [1, 2, 3, 4].map((n) => backoffDelay(backoff, n)),
      [100, 300, 900, 1000],
    );
    assert.equal(
      backoffDelay({ ...backoff, jitter: true }, 2, () => 0),
      150,
    );
    assert.equal(backoffDelay(undefined, 1), 100);
  });

  it('allow a count or a share of the items', () => {
    assert.equal(skipAllowance(undefined, 10), Infinity);
    assert.equal(skipAllowance({ count: 3 }, 10_000), 3);
    assert.equal(skipAllowance({ ratio: 0.01 }, 10_000), 100);
  });

  it('name every bad option', () => {
    assert.deepEqual(itemPolicyProblems({ retry: { limit: 2, on: [Transient] } }), []);
    assert.deepEqual(
      itemPolicyProblems({
        retry: {
          limit: 1.5,
          on: [],
          backoff: { initialMs: -1, jitter: 'yes' as never },
          replayTries: 0,
        },
        skip: { on: ['Refused' as never], limit: { ratio: 2 } },
      }),
      [
        'retry.limit must be a whole number >= 0 (got 1.5)',
        'retry.on must be a non-empty array of error classes, or a predicate (error) => boolean',
        'retry.backoff.initialMs must be a number of milliseconds >= 0 (got -1)',
        'retry.backoff.jitter must be true or false (got "yes")',
        'retry.replayTries must be a whole number >= 1 (got 0)',
        'skip.on must hold error classes (constructors such as RateLimitError), not values',
        'skip.limit.ratio must be a share of the items, above 0 and at most 1 (got 2)',
      ],
    );
  });
});

describe('ItemRecovery', () => {
  const policies = {
    retry: { limit: 2, on: [Transient], backoff: { initialMs: 10 } },
    skip: { on: [Refused], limit: { count: 1 } },
  };

  it('retries a batch in place up to the limit, at the size it failed with', () => {
    const recovery = new ItemRecovery(policies);
    assert.deepEqual(recovery.decide(new Transient(), batch(100, 50), 0, 1000), {
      kind: 'retry',
      retry: 1,
      limit: 2,
      delayMs: 10,
    });
    assert.deepEqual(recovery.next(100, 80), { size: 50, mode: 'batch' });
    assert.equal(recovery.decide(new Transient(), batch(100, 50), 0, 1000).kind, 'retry');
    // Retries spent: the batch is replayed alone, each item tried once more, not retried again.
    assert.equal(recovery.decide(new Transient(), batch(100, 50), 0, 1000).kind, 'scan');
    assert.deepEqual(recovery.next(100, 80), { size: 1, mode: 'scan' });
    assert.equal(recovery.decide(new Transient(), batch(100, 1, 'scan'), 0, 1000).kind, 'fail');
  });

  it('tries an item that always fails exactly limit + 2 times with the default replayTries', () => {
    const always = {
      retry: { limit: 3, on: [Refused] },
      skip: { on: [Refused] },
    };
    for (const [replayTries, expected] of [
      [undefined, 5],
      [1, 5],
      [3, 7],
    ] as const) {
      const recovery = new ItemRecovery({
        ...always,
        retry: { ...always.retry, replayTries },
      });
      // The bad item is 7 of a batch of 10 at 0; the replay reaches it after 0-6 pass.
      let tries = 0;
      let decision = recovery.decide(new Refused(), batch(0, 10), 0, 100);
      tries += 1;
      while (decision.kind === 'retry') {
        decision = recovery.decide(new Refused(), batch(0, 10), 0, 100);
        tries += 1;
      }
      assert.equal(decision.kind, 'scan');
      for (let index = 0; index < 7; index++) {
        assert.deepEqual(recovery.next(index, 10), { size: 1, mode: 'scan' });
        recovery.committed();
      }
      do {
        decision = recovery.decide(new Refused(), batch(7, 1, 'scan'), 0, 100);
        tries += 1;
      } while (decision.kind === 'retry');
      assert.equal(decision.kind, 'skip');
      assert.equal(tries, expected, `replayTries ${String(replayTries)}`);
    }
  });

  it('keeps the retries of replayed items when a skippable error, not spent retries, started the replay', () => {
    const recovery = new ItemRecovery(policies);
    assert.equal(recovery.decide(new Refused(), batch(0, 50), 0, 1000).kind, 'scan');
    // Item 20 was never reached by the batch: a transient failure of it is retried as usual.
    assert.equal(recovery.decide(new Transient(), batch(20, 1, 'scan'), 0, 1000).kind, 'retry');
    assert.equal(recovery.decide(new Transient(), batch(20, 1, 'scan'), 0, 1000).kind, 'retry');
    assert.equal(recovery.decide(new Transient(), batch(20, 1, 'scan'), 0, 1000).kind, 'fail');
  });

  it('replays a batch item by item after a skippable error, then skips up to the limit', () => {
    const recovery = new ItemRecovery(policies);
    assert.equal(recovery.decide(new Refused(), batch(0, 50), 0, 1000).kind, 'scan');
    assert.deepEqual(recovery.next(0, 50), { size: 1, mode: 'scan' });
    assert.equal(recovery.endsScan(48), false);
    assert.equal(recovery.endsScan(49), true);
    assert.equal(recovery.decide(new Refused(), batch(7, 1, 'scan'), 0, 1000).kind, 'skip');
    assert.deepEqual(recovery.decide(new Refused(), batch(9, 1, 'scan'), 1, 1000), {
      kind: 'limit',
      allowed: '1 items',
    });
    assert.deepEqual(recovery.next(50, 50), { size: 50, mode: 'batch' });
  });

  it('fails on errors no policy names, and keeps redriven items that fail again', () => {
    const recovery = new ItemRecovery(policies);
    assert.equal(recovery.decide(new Error('other'), batch(0, 50), 0, 1000).kind, 'fail');
    assert.equal(recovery.decide(new Refused(), batch(3, 1, 'redrive'), 5, 1000).kind, 'keep');
    const retryOnly = new ItemRecovery({ retry: policies.retry });
    assert.equal(retryOnly.decide(new Transient(), batch(0, 1), 0, 10).kind, 'retry');
    assert.equal(retryOnly.decide(new Transient(), batch(0, 1), 0, 10).kind, 'retry');
    assert.equal(retryOnly.decide(new Transient(), batch(0, 1), 0, 10).kind, 'fail');
  });
});
