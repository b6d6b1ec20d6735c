// The chunk-size rule of runs (chunkSize: 'auto' and runs.plan()), without a database.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chunkJobId } from '../../src/index.js';
import { planChunks, type PlanInput } from '../../src/runs/runs.plan.js';

const base: PlanInput = {
  totalItems: 100_000,
  workers: 4,
  itemMs: null,
  targetChunkMs: 60_000,
  minChunkSize: 1,
  maxChunkSize: 50_000,
};

describe('planChunks', () => {
  it('gives every live worker work: 1, 4 and 16 workers, with and without a measured time', () => {
    for (const workers of [1, 4, 16]) {
      for (const itemMs of [null, 0.01, 2, 500]) {
        for (const totalItems of [16, 17, 1000, 20_000, 1_000_000]) {
          const plan = planChunks({ ...base, workers, itemMs, totalItems });
          assert.ok(
            plan.chunkCount >= workers,
            `${totalItems} items, ${workers} workers, ${itemMs} ms/item: ${plan.reason}`,
          );
          assert.equal(plan.chunkCount, Math.ceil(totalItems / plan.chunkSize));
          assert.ok(Number.isSafeInteger(plan.chunkSize) && plan.chunkSize >= 1);
        }
      }
    }
  });

  it('with a measured per-item time, a chunk lasts about the target', () => {
    const plan = planChunks({ ...base, totalItems: 1_000_000, workers: 4, itemMs: 2 });
    assert.equal(plan.chunkSize, 30_000);
    assert.equal(plan.estimatedChunkMs, 60_000);
    assert.match(plan.reason, /30,000 items last about 60 s at 2 ms\/item/);
    for (const itemMs of [1.3, 1.7, 7, 45]) {
      const timed = planChunks({ ...base, totalItems: 10_000_000, workers: 16, itemMs });
      const ms = timed.estimatedChunkMs ?? 0;
      assert.ok(ms <= 60_000 && ms > 60_000 - itemMs, `${itemMs} ms/item: ${timed.reason}`);
    }
  });

  it('the worker limit wins when the target would leave workers idle', () => {
    const plan = planChunks({ ...base, totalItems: 1000, workers: 4, itemMs: 2 });
    assert.equal(plan.chunkSize, 250);
    assert.equal(plan.chunkCount, 4);
    assert.match(plan.reason, /give each of 4 worker\(s\) a chunk/);
  });

  it('stays within the bounds, and plans for one worker when none is alive', () => {
    assert.equal(planChunks({ ...base, totalItems: 10_000_000, workers: 1 }).chunkSize, 50_000);
    assert.equal(planChunks({ ...base, minChunkSize: 500, workers: 1000 }).chunkSize, 500);
    assert.equal(planChunks({ ...base, totalItems: 3, workers: 16 }).chunkSize, 1);
    const none = planChunks({ ...base, workers: 0 });
    assert.equal(none.chunkSize, 50_000);
    assert.equal(none.workers, 0);
  });
});

describe('chunkJobId', () => {
  it('is a deterministic uuid per run and chunk', () => {
    const id = chunkJobId('run-1', 0);
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(chunkJobId('run-1', 0), id);
    assert.notEqual(chunkJobId('run-1', 1), id);
    assert.notEqual(chunkJobId('run-2', 0), id);
  });
});
