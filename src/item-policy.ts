// Retry and skip policies of `@Checkpointed()`: their types, their bootstrap checks, and the
// pure decisions the batch loop asks of them (does this error match, how long to wait, how many
// items may be skipped). No I/O here.

/** A class of errors; an error matches when it is an instance of it (or of a subclass). */
export type ErrorClass = abstract new (...args: never[]) => Error;

/**
 * Which errors a policy names: a list of error classes (matched with `instanceof`), or a
 * predicate that gets the thrown value.
 */
export type ErrorMatcher = readonly ErrorClass[] | ((error: unknown) => boolean);

/** Exponential backoff between retries: `initialMs * factor^(n-1)`, at most `maxMs`. */
export interface BackoffOptions {
  /** Wait before the first retry, in milliseconds (default 100). */
  initialMs?: number;
  /** Each further retry waits this many times longer (default 2). */
  factor?: number;
  /** The longest wait, in milliseconds (default 30 000). */
  maxMs?: number;
  /** Wait a random time between half the delay and the delay, so that workers spread out. */
  jitter?: boolean;
}

/** Retries a failing batch in place, after rolling it back (rate limits, timeouts). */
export interface RetryPolicy {
  /** Retries after the first failure (so a batch runs at most `limit + 1` times in a row). */
  limit: number;
  backoff?: BackoffOptions;
  /** The errors worth retrying. */
  on: ErrorMatcher;
  /**
   * Tries of each item when a batch spent its retries and is replayed one item at a time
   * (default 1: each item once more, so an item that always fails is tried `limit + 2` times
   * before it reaches the ledger). The replay never grants the whole budget again; raise this
   * when items fail transiently on their own (an item the batch never reached gets only these).
   */
  replayTries?: number;
}

/** Tries of each replayed item after its batch spent its retries, when `replayTries` is unset. */
export const DEFAULT_REPLAY_TRIES = 1;

/**
 * The most items a key may skip: a count, or a share of the key's items (of the items seen so
 * far when the total is unknown, as with `pages()`).
 */
export type SkipLimit = { count: number } | { ratio: number };

/** Isolates the items that fail with the errors named into the failed-item ledger. */
export interface SkipPolicy {
  /** The errors that mark an item as failed, for it alone (a refusal, a malformed answer). */
  on: ErrorMatcher;
  /** Reached, the attempt fails with CheckpointSkipLimitError (progress and ledger kept). */
  limit?: SkipLimit;
  /**
   * What the ledger stores of a failed item (default: the item itself, as JSON). Return an id
   * for items that are large or hold no JSON form.
   */
  ledgerValue?: (item: never) => unknown;
}

/** The two policies, as `@Checkpointed()` options carry them. */
export interface ItemPolicies {
  retry?: RetryPolicy;
  skip?: SkipPolicy;
}

/**
 * The policies of one queue's `@Checkpointed({ queue })` methods, set in the module options
 * (`queues: { screening: { skip: { limit: { ratio: 0.02 } } } }`), so that operators change a
 * skip limit or a retry budget in configuration. Any field may be left out: the decorator's
 * values win field by field, and what neither gives is left out (a policy without `on` stops
 * bootstrap).
 */
export interface QueueItemPolicies {
  retry?: Partial<RetryPolicy>;
  skip?: Partial<SkipPolicy>;
}

/** The decorator's policies over the queue's module options: a field the decorator gives wins. */
export function mergePolicies(
  decorator: ItemPolicies,
  queue: QueueItemPolicies | undefined,
): ItemPolicies {
  const retry =
    queue?.retry === undefined
      ? decorator.retry
      : ({
          ...queue.retry,
          ...defined(decorator.retry),
          ...(queue.retry.backoff === undefined && decorator.retry?.backoff === undefined
            ? {}
            : { backoff: { ...queue.retry.backoff, ...defined(decorator.retry?.backoff) } }),
        } as RetryPolicy);
  const skip =
    queue?.skip === undefined
      ? decorator.skip
      : ({ ...queue.skip, ...defined(decorator.skip) } as SkipPolicy);
  return {
    ...(retry === undefined ? {} : { retry }),
    ...(skip === undefined ? {} : { skip }),
  };
}

/** The fields of `value` that are not undefined. */
function defined<T extends object>(value: T | undefined): Partial<T> {
  if (value === undefined) return {};
  return Object.fromEntries(
    Object.entries(value).filter(([, field]) => field !== undefined),
  ) as Partial<T>;
}

const DEFAULT_BACKOFF: Required<BackoffOptions> = {
  initialMs: 100,
  factor: 2,
  maxMs: 30_000,
  jitter: false,
};

/** Whether `error` is one the matcher names. A predicate that throws names nothing. */
export function matches(on: ErrorMatcher, error: unknown): boolean {
  if (typeof on === 'function') {
    try {
      return on(error) === true;
    } catch {
      return false;
    }
  }
  return on.some((type) => error instanceof type);
}

/** The wait before retry number `retry` (1 for the first retry). */
export function backoffDelay(
  backoff: BackoffOptions | undefined,
  retry: number,
  random = Math.random,
): number {
  const { initialMs, factor, maxMs, jitter } = { ...DEFAULT_BACKOFF, ...backoff };
  const delay = Math.min(maxMs, initialMs * factor ** (retry - 1));
  return jitter ? delay / 2 + (random() * delay) / 2 : delay;
}

/** How many items a key may skip in all, given its total (or the items seen so far). */
export function skipAllowance(limit: SkipLimit | undefined, items: number): number {
  if (limit === undefined) return Infinity;
  if ('count' in limit) return limit.count;
  return Math.floor(limit.ratio * items);
}

/** Describes a limit for messages: `5 items` or `1% of 10000 items (100)`. */
export function describeLimit(limit: SkipLimit | undefined, items: number): string {
  if (limit === undefined) return 'no limit';
  if ('count' in limit) return `${limit.count} items`;
  return `${limit.ratio * 100}% of ${items} items (${skipAllowance(limit, items)})`;
}

/**
 * The problems of `retry` and `skip` options, each naming the field and what is allowed.
 * `prefix` goes before each field's name (`queues.screening.`); `partial` allows `limit` and
 * `on` to be left out (a queue's module options, completed by the decorator's).
 */
export function itemPolicyProblems(
  policies: ItemPolicies | QueueItemPolicies,
  { prefix = '', partial = false }: { prefix?: string; partial?: boolean } = {},
): string[] {
  const problems: string[] = [];
  const { retry, skip } = policies;
  if (retry !== undefined) {
    if (!isObject(retry)) {
      problems.push(`${prefix}retry must be an object { limit, backoff?, on, replayTries? }`);
    } else {
      if (
        !(partial && retry.limit === undefined) &&
        (!Number.isSafeInteger(retry.limit) || (retry.limit as number) < 0)
      ) {
        problems.push(
          `${prefix}retry.limit must be a whole number >= 0 (got ${show(retry.limit)})`,
        );
      }
      if (!(partial && retry.on === undefined)) {
        problems.push(...matcherProblems(`${prefix}retry.on`, retry.on));
      }
      problems.push(...backoffProblems(prefix, retry.backoff));
      const tries = retry.replayTries;
      if (tries !== undefined && !(Number.isSafeInteger(tries) && tries >= 1)) {
        problems.push(
          `${prefix}retry.replayTries must be a whole number >= 1 (got ${show(tries)})`,
        );
      }
    }
  }
  if (skip !== undefined) {
    if (!isObject(skip)) {
      problems.push(`${prefix}skip must be an object { on, limit?, ledgerValue? }`);
    } else {
      if (!(partial && skip.on === undefined)) {
        problems.push(...matcherProblems(`${prefix}skip.on`, skip.on));
      }
      problems.push(...limitProblems(prefix, skip.limit));
      if (skip.ledgerValue !== undefined && typeof skip.ledgerValue !== 'function') {
        problems.push(`${prefix}skip.ledgerValue must be a function of the item`);
      }
    }
  }
  return problems;
}

function matcherProblems(field: string, on: unknown): string[] {
  if (typeof on === 'function') return [];
  if (!Array.isArray(on) || on.length === 0) {
    return [
      `${field} must be a non-empty array of error classes, or a predicate (error) => boolean`,
    ];
  }
  return on.some((type) => typeof type !== 'function')
    ? [`${field} must hold error classes (constructors such as RateLimitError), not values`]
    : [];
}

function backoffProblems(prefix: string, backoff: unknown): string[] {
  if (backoff === undefined) return [];
  if (!isObject(backoff))
    return [`${prefix}retry.backoff must be an object { initialMs?, factor?, maxMs?, jitter? }`];
  const problems: string[] = [];
  const { initialMs, factor, maxMs, jitter } = backoff as BackoffOptions;
  for (const [name, value] of [
    ['initialMs', initialMs],
    ['maxMs', maxMs],
  ] as const) {
    if (value !== undefined && !(Number.isFinite(value) && value >= 0)) {
      problems.push(
        `${prefix}retry.backoff.${name} must be a number of milliseconds >= 0 (got ${show(value)})`,
      );
    }
  }
  if (factor !== undefined && !(Number.isFinite(factor) && factor >= 1)) {
    problems.push(`${prefix}retry.backoff.factor must be a number >= 1 (got ${show(factor)})`);
  }
  if (jitter !== undefined && typeof jitter !== 'boolean') {
    problems.push(`${prefix}retry.backoff.jitter must be true or false (got ${show(jitter)})`);
  }
  return problems;
}

function limitProblems(prefix: string, limit: unknown): string[] {
  if (limit === undefined) return [];
  if (isObject(limit) && 'count' in limit && !('ratio' in limit)) {
    const count = limit.count;
    return typeof count === 'number' && Number.isSafeInteger(count) && count >= 0
      ? []
      : [`${prefix}skip.limit.count must be a whole number >= 0 (got ${show(count)})`];
  }
  if (isObject(limit) && 'ratio' in limit && !('count' in limit)) {
    const ratio = limit.ratio;
    return typeof ratio === 'number' && ratio > 0 && ratio <= 1
      ? []
      : [
          `${prefix}skip.limit.ratio must be a share of the items, above 0 and at most 1 (got ${show(ratio)})`,
        ];
  }
  return [`${prefix}skip.limit must be { count: n } or { ratio: r } (one of them)`];
}

function isObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function show(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}
