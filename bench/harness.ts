// Measurement primitives shared by every scenario: how samples are taken, interleaved and
// summarised. The machine is small (2 cores) and shared, so no scenario measures one variant
// after another. Single operations are interleaved round by round (`interleave`), the order
// rotating each round so that no variant always runs right after the same neighbour. Batch
// loops, whose runs last too long for that (load from elsewhere comes in bursts of seconds),
// run side by side and take turns batch by batch (`lockstep`).

/** How a set of latency samples (milliseconds) is summarised, everywhere in the bench. */
export interface Summary {
  n: number;
  mean: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentiles: every reported figure is a sample that was actually observed. */
export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) throw new Error('summarize: no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
  return {
    n: sorted.length,
    mean: sorted.reduce((sum, x) => sum + x, 0) / sorted.length,
    min: sorted[0],
    p50: rank(0.5),
    p90: rank(0.9),
    p99: rank(0.99),
    max: sorted[sorted.length - 1],
  };
}

/**
 * One contender of an interleaved comparison. `measure` takes one sample: a duration in
 * milliseconds by default, or a richer record (a run's total and its batch times, say).
 */
export interface Variant<S = number> {
  label: string;
  measure: () => Promise<S>;
  /**
   * Samples taken per round (default 1). A cheap variant beside an expensive one takes several,
   * so that both end with enough samples for a p99 while staying interleaved.
   */
  perRound?: number;
}

/**
 * Runs `warmupRounds` discarded rounds, then `rounds` measured ones. In each round every variant
 * takes its samples, one at a time, round-robin; the starting variant rotates from round to
 * round. Returns the samples of each variant, by label.
 */
export async function interleave<S>(
  variants: readonly Variant<S>[],
  rounds: number,
  warmupRounds: number,
): Promise<Map<string, S[]>> {
  const samples = new Map(variants.map((variant) => [variant.label, [] as S[]]));
  const most = Math.max(...variants.map((variant) => variant.perRound ?? 1));
  for (let round = -warmupRounds; round < rounds; round++) {
    const shift = ((round % variants.length) + variants.length) % variants.length;
    const order = [...variants.slice(shift), ...variants.slice(0, shift)];
    for (let repeat = 0; repeat < most; repeat++) {
      for (const variant of order) {
        if (repeat >= (variant.perRound ?? 1)) continue;
        const sample = await variant.measure();
        if (round >= 0) samples.get(variant.label)?.push(sample);
      }
    }
  }
  return samples;
}

/** The samples `interleave` took for `label` (a missing label is a bug in the scenario). */
export function samplesOf<S>(samples: Map<string, S[]>, label: string): S[] {
  const taken = samples.get(label);
  if (taken === undefined || taken.length === 0) throw new Error(`bench: no samples for ${label}`);
  return taken;
}

/** Wraps an operation so that it returns its own duration in milliseconds. */
export function timed(operation: () => Promise<unknown>): () => Promise<number> {
  return async () => {
    const started = performance.now();
    await operation();
    return performance.now() - started;
  };
}

/**
 * A turn that loops running side by side pass to one another: only the holder runs, so one
 * statement at a time is in flight and every loop meets the same load, batch by batch.
 */
export class Relay {
  private held = false;
  private readonly waiting: Array<() => void> = [];

  /** Waits for the turn; returns how long that took (ms). */
  async take(): Promise<number> {
    const started = performance.now();
    if (this.held) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.held = true;
    return performance.now() - started;
  }

  /**
   * Hands the turn to the loop that has waited longest. The turn passes directly (it is never
   * free in between), so a loop that releases and takes again at once queues behind the others.
   */
  release(): void {
    const next = this.waiting.shift();
    if (next === undefined) this.held = false;
    else next();
  }
}

/**
 * Marks taken when a loop body receives a batch, and once after the last batch: the gaps between
 * consecutive marks are the batch cycle times (the body and whatever checkpointing follows it),
 * measured the same way for the decorator, the hand-written loops and the baselines. Time spent
 * waiting for the turn (`pass`) is taken out of the gap it falls in.
 */
export class Timeline {
  private readonly marks: number[] = [];
  private readonly waits: number[] = [];
  private waited = 0;

  /** Without a relay, `pass` returns at once (a loop measured on its own). */
  constructor(private readonly relay?: Relay) {}

  mark(): void {
    this.marks.push(performance.now());
    this.waits.push(0);
  }

  /** Gives the turn to the next loop and waits for it to come back (at the end of a body). */
  async pass(): Promise<void> {
    if (this.relay === undefined) return;
    this.relay.release();
    const waited = await this.relay.take();
    this.waited += waited;
    if (this.waits.length > 0) this.waits[this.waits.length - 1] += waited;
  }

  /** All the time spent waiting for the turn (ms). */
  get waitedMs(): number {
    return this.waited;
  }

  /** Milliseconds between consecutive marks, less the waits for the turn within each. */
  intervals(): number[] {
    return this.marks.slice(1).map((at, i) => at - this.marks[i] - this.waits[i]);
  }
}

/** A loop of one variant, run side by side with the others; it calls `timeline.pass()` per batch. */
export interface LockstepVariant<S> {
  label: string;
  measure: (timeline: Timeline) => Promise<S>;
}

/**
 * Runs `warmupRounds` discarded rounds, then `rounds` measured ones. In each round every
 * variant runs once, all of them at the same time, taking turns at each batch boundary
 * (Timeline.pass); who starts rotates from round to round. A variant holds the turn from its
 * start to its first pass and from its last pass to its end, so its claim and complete are
 * measured alone too. Returns the samples of each variant, by label.
 */
export async function lockstep<S>(
  variants: readonly LockstepVariant<S>[],
  rounds: number,
  warmupRounds: number,
): Promise<Map<string, S[]>> {
  const samples = new Map(variants.map((variant) => [variant.label, [] as S[]]));
  for (let round = -warmupRounds; round < rounds; round++) {
    const shift = ((round % variants.length) + variants.length) % variants.length;
    const order = [...variants.slice(shift), ...variants.slice(0, shift)];
    const relay = new Relay();
    // Each variant queues for the turn before it starts: they start in `order`.
    const outcomes = await Promise.allSettled(
      order.map(async (variant) => {
        await relay.take();
        try {
          return await variant.measure(new Timeline(relay));
        } finally {
          relay.release();
        }
      }),
    );
    outcomes.forEach((outcome, i) => {
      if (outcome.status === 'rejected') throw outcome.reason;
      if (round >= 0) samples.get(order[i].label)?.push(outcome.value);
    });
  }
  return samples;
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
