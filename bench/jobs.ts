// The decorated methods under test, written the way a user writes them. Each marks a Timeline
// when its loop body receives a batch and passes the turn at the end of the body (see
// harness.ts), so that the bench times the batch cycle from outside the library, exactly as it
// times the hand-written loops it compares them with.
import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { CheckpointCtx, Checkpointed, type CheckpointContext } from '../src/index.js';
import type { Timeline } from './harness.js';

/** Items per batch, everywhere in the bench (the figure, and the library's default). */
export const BATCH_SIZE = 100;
/** The small batches of section 3 (transactional mode at 10 rows a batch). */
export const SMALL_BATCH_SIZE = 10;
/** The pg-boss queue of section 15's worker processes (bench/fleet-worker.ts). */
export const FLEET_QUEUE = 'fleet';

/** One row per item that a transactional batch writes (table created in database.ts). */
@Entity({ name: 'bench_effect' })
export class BenchEffect {
  @PrimaryGeneratedColumn()
  id!: number;

  @Column('int')
  item!: number;

  @Column('int')
  batch!: number;
}

/** The rows a batch inserts: the same for the decorator and for the baselines. */
export function effectsOf(items: readonly number[], batch: number): Array<Omit<BenchEffect, 'id'>> {
  return items.map((item) => ({ item, batch }));
}

/** Trivial per-item work: a sum, returned so that the loop cannot be optimised away. */
export function work(items: readonly number[]): number {
  let sum = 0;
  for (const item of items) sum += item;
  return sum;
}

export interface LoopInput {
  key: string;
  items: readonly number[];
  timeline: Timeline;
}

export interface ResumeInput {
  key: string;
  items: readonly number[];
  /** Called when the loop body receives its first batch, with the batch's first item index. */
  onFirstBatch: (startIndex: number) => void;
}

/**
 * Thrown by the resume probe as soon as it sees its first batch: the attempt ends (failed)
 * before that batch advances, so the stored resume point stays where it was for the next probe.
 */
export class FirstBatchReached extends Error {}

const byKey = (input: { key: string }) => input.key;

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`bench: ${what} was not provided`);
  return value;
}

/** A transactional loop body: each batch inserts its rows through batch.manager. */
async function insertEach(input: LoopInput, ctx: CheckpointContext): Promise<number> {
  for await (const batch of ctx.batches(input.items)) {
    input.timeline.mark();
    await batch.manager.insert(BenchEffect, effectsOf(batch.items, batch.index));
    await input.timeline.pass();
  }
  input.timeline.mark();
  return input.items.length;
}

@Injectable()
export class BenchJobs {
  /** Checkpointing only: trivial work per item, one advance per batch. */
  @Checkpointed({ key: byKey, batchSize: BATCH_SIZE })
  async sum(input: LoopInput, @CheckpointCtx() ctx?: CheckpointContext): Promise<number> {
    let sum = 0;
    for await (const batch of required(ctx, 'the context').batches(input.items)) {
      input.timeline.mark();
      sum += work(batch.items);
      await input.timeline.pass();
    }
    input.timeline.mark();
    return sum;
  }

  /** Transactional mode: each batch inserts its rows through batch.manager. */
  @Checkpointed({ key: byKey, batchSize: BATCH_SIZE, transactional: true })
  async insert(input: LoopInput, @CheckpointCtx() ctx?: CheckpointContext): Promise<number> {
    return insertEach(input, required(ctx, 'the context'));
  }

  /** The same, SMALL_BATCH_SIZE items a batch. */
  @Checkpointed({ key: byKey, batchSize: SMALL_BATCH_SIZE, transactional: true })
  async insertSmall(input: LoopInput, @CheckpointCtx() ctx?: CheckpointContext): Promise<number> {
    return insertEach(input, required(ctx, 'the context'));
  }

  /** The resume probe: reports the first batch it receives, then stops (see FirstBatchReached). */
  @Checkpointed({ key: byKey, batchSize: BATCH_SIZE })
  async firstBatch(input: ResumeInput, @CheckpointCtx() ctx?: CheckpointContext): Promise<void> {
    for await (const batch of required(ctx, 'the context').batches(input.items)) {
      input.onFirstBatch(batch.startIndex);
      throw new FirstBatchReached();
    }
  }
}
