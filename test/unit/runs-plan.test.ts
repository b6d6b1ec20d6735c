// The chunk-size rule of runs (chunkSize: 'auto' and runs.plan()), without a database.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chunkJobId } from '../../src/index.js';
import { chunkSlices, planChunks, type PlanInput } from '../../src/runs/runs.plan.js';

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
          assert.equal(plan.chunkSize, Math.ceil(totalItems / plan.chunkCount));
          assert.ok(Number.isSafeInteger(plan.chunkSize) && plan.chunkSize >= 1);
          assertEven(chunkSlices(totalItems, plan.chunkCount), totalItems);
        }
      }
    }
  });

  it('with a measured per-item time, a chunk lasts about the target', () => {
    const plan = planChunks({ ...base, totalItems: 1_000_000, workers: 4, itemMs: 2 });
    // 30,000 items would last 60 s: 34 chunks, dealt out evenly (29,411-29,412 items each).
    assert.equal(plan.chunkCount, 34);
    assert.equal(plan.chunkSize, 29_412);
    assert.equal(plan.estimatedChunkMs, 58_824);
    assert.match(plan.reason, /30,000 items last about 60 s at 2 ms\/item/);
    for (const itemMs of [1.3, 1.7, 7, 45]) {
      const timed = planChunks({ ...base, totalItems: 10_000_000, workers: 16, itemMs });
      const ms = timed.estimatedChunkMs ?? 0;
      // Even chunks are at most one chunk's share shorter than the target (here < 1%).
      assert.ok(ms <= 60_000 && ms > 59_400, `${itemMs} ms/item: ${timed.reason}`);
    }
  });

  it('the worker limit wins when the target would leave workers idle', () => {
    const plan = planChunks({ ...base, totalItems: 1000, workers: 4, itemMs: 2 });
    assert.equal(plan.chunkSize, 250);
    assert.equal(plan.chunkCount, 4);
    assert.match(plan.reason, /chunks of 250 items give each of 4 worker\(s\) one/);
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

/** The slices cover every item once, in order, and differ by at most one item. */
function assertEven(slices: Array<{ offset: number; size: number }>, totalItems: number): void {
  let next = 0;
  for (const slice of slices) {
    assert.equal(slice.offset, next);
    next += slice.size;
  }
  assert.equal(next, totalItems);
  const sizes = slices.map((slice) => slice.size);
  assert.ok(
    Math.max(...sizes) - Math.min(...sizes) <= 1,
    `sizes ${Math.min(...sizes)}-${Math.max(...sizes)}`,
  );
}

describe('balanced chunks', () => {
  it('100,000 items for 3 live workers: 3 chunks of 33,334, 33,333 and 33,333', () => {
    const plan = planChunks({ ...base, totalItems: 100_000, workers: 3 });
    assert.equal(plan.chunkCount, 3);
    assert.equal(plan.chunkSize, 33_334);
    assert.deepEqual(
      chunkSlices(100_000, plan.chunkCount).map((slice) => slice.size),
      [33_334, 33_333, 33_333],
    );
    assert.match(plan.reason, /3 chunks of 33,333-33,334/);
  });

  it('never leaves a worker idle that the rule meant to use, for any count of items and workers', () => {
    for (let workers = 1; workers <= 40; workers++) {
      for (const totalItems of [1, 2, 3, workers - 1, workers, workers + 1, 97, 1000, 100_001]) {
        if (totalItems < 1) continue;
        const plan = planChunks({ ...base, totalItems, workers });
        // Without a measured time the rule means one chunk per worker: exactly that many, unless
        // maxChunkSize asks for more.
        assert.equal(
          plan.chunkCount,
          Math.max(Math.min(workers, totalItems), Math.ceil(totalItems / base.maxChunkSize)),
          `${totalItems}/${workers}`,
        );
        assertEven(chunkSlices(totalItems, plan.chunkCount), totalItems);
      }
    }
  });

  it('the bounds and a measured time keep chunks even too', () => {
    for (const input of [
      { totalItems: 10_000_000, workers: 1 },
      { totalItems: 100_000, workers: 1000, minChunkSize: 500 },
      { totalItems: 1_000_003, workers: 7, itemMs: 3 },
      { totalItems: 999, workers: 4, itemMs: 500 },
    ]) {
      const plan = planChunks({ ...base, ...input });
      const slices = chunkSlices(plan.totalItems, plan.chunkCount);
      assertEven(slices, plan.totalItems);
      assert.ok(plan.chunkSize <= (input.totalItems > 50_000 ? 50_000 : input.totalItems));
      assert.ok(Math.min(...slices.map((slice) => slice.size)) >= (input.minChunkSize ?? 1));
    }
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
