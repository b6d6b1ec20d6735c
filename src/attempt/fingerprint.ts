import { createHash } from 'node:crypto';
import type { AttemptHooks, CheckpointedMethod } from './attempt.interfaces.js';

/**
 * The fingerprint of one call: the `fingerprint` option's value, digested; by default a digest of
 * the method's arguments (the context parameter left out; for a queue job, its data, also when
 * the job comes as the only element of a work() handler's array); none with
 * `fingerprint: false`.
 */
export function fingerprintOf(
  method: CheckpointedMethod,
  args: unknown[],
  hooks: AttemptHooks,
): string | undefined {
  const option = method.options.fingerprint;
  if (option === false) return undefined;
  if (option !== undefined) return digest(option(...(args as never[])));
  // A pg-boss 12 work() handler gets an array; `@Checkpointed({ key })` under a wrapper's worker
  // is called with it. Its job's other fields (retryCount, startedOn) change on every retry, so
  // digesting them made each resumed attempt look like changed input and fail.
  const first = args[0];
  const job: unknown =
    hooks.queue !== undefined && Array.isArray(first) && first.length === 1
      ? (first as unknown[])[0]
      : first;
  if (
    (hooks.queue !== undefined || method.options.queue !== undefined) &&
    typeof job === 'object' &&
    job !== null &&
    'data' in job
  ) {
    return inputDigest(job.data);
  }
  return inputDigest(args.filter((_, index) => index !== method.contextIndex));
}

/** A short, stable digest of any JSON value (sha256, 16 hex characters). */
export function digest(value: unknown): string {
  return createHash('sha256')
    .update(JSON.stringify(value) ?? 'undefined')
    .digest('hex')
    .slice(0, 16);
}

/**
 * The default fingerprint: a digest (sha256, 16 hex characters) of the input in a canonical form:
 * object keys sorted, so that the same data built in another order digests the same; what JSON
 * leaves out (functions, symbols, undefined properties) left out; what it cannot hold (BigInt,
 * cycles) spelled out instead of throwing, since a fingerprint must never stop a call.
 */
export function inputDigest(value: unknown): string {
  const hash = createHash('sha256');
  // Appended to one string (V8 joins appends without copying) and hashed every 64 KB, so that a
  // large input never becomes one huge string; the digest does not depend on the slicing.
  let pending = '';
  const emit = (text: string) => {
    if (text.length > 4096) {
      // A long text goes to the hash as it is, without being copied into the pending string.
      if (pending.length > 0) hash.update(pending);
      pending = '';
      hash.update(text);
      return;
    }
    pending += text;
    if (pending.length > 65_536) {
      hash.update(pending);
      pending = '';
    }
  };
  const seen = new Set<object>();
  const walk = (item: unknown): void => {
    switch (typeof item) {
      case 'string':
        // Length-prefixed rather than JSON-escaped: unambiguous, and no copy of a long text.
        emit(`s${item.length}:`);
        return emit(item);
      case 'number':
        return emit(Number.isFinite(item) ? String(item) : `"${String(item)}"`);
      case 'boolean':
        return emit(item ? 'true' : 'false');
      case 'bigint':
        return emit(`{"$bigint":"${item}"}`);
      case 'undefined':
      case 'function':
      case 'symbol':
        return emit('null');
    }
    if (item === null) return emit('null');
    const object = item as object;
    if (seen.has(object)) return emit('"$cycle"');
    if (item instanceof Date) return emit(JSON.stringify(item.toISOString()));
    seen.add(object);
    if (Array.isArray(object)) {
      emit('[');
      for (let i = 0; i < object.length; i++) {
        if (i > 0) emit(',');
        walk((object as unknown[])[i]);
      }
      emit(']');
    } else {
      emit('{');
      let first = true;
      for (const name of Object.keys(object).sort()) {
        const property: unknown = (object as Record<string, unknown>)[name];
        if (
          property === undefined ||
          typeof property === 'function' ||
          typeof property === 'symbol'
        )
          continue;
        if (!first) emit(',');
        first = false;
        emit(`s${name.length}:`);
        emit(name);
        walk(property);
      }
      emit('}');
    }
    seen.delete(object);
  };
  walk(value);
  hash.update(pending);
  return hash.digest('hex').slice(0, 16);
}
