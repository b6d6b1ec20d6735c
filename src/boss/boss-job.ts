import type { Job } from 'pg-boss';

/**
 * The pg-boss job a handler was called with: the value itself, or the only element of the job
 * array pg-boss 12 hands to `work()` handlers. Undefined for anything else (duck-typed: a wrapper
 * may bring its own copy of pg-boss's types).
 */
export function bossJobOf(value: unknown): Job<unknown> | undefined {
  const candidate: unknown = Array.isArray(value) && value.length === 1 ? value[0] : value;
  if (typeof candidate !== 'object' || candidate === null) return undefined;
  const job = candidate as Record<string, unknown>;
  return typeof job.id === 'string' &&
    job.id.length > 0 &&
    typeof job.name === 'string' &&
    job.name.length > 0 &&
    typeof job.retryCount === 'number' &&
    'data' in job
    ? (candidate as Job<unknown>)
    : undefined;
}
