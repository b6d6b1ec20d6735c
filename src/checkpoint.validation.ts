// Checks applied before anything is written: a bad input throws CheckpointValidationError naming
// the field, and nothing reaches the database.
import {
  CHECKPOINT_STATES,
  IDENTIFIER_PATTERN,
  MAX_KEY_LENGTH,
  type CheckpointState,
} from './checkpoint.constants.js';
import { CheckpointConfigError, CheckpointValidationError } from './checkpoint.errors.js';
import { messages } from './checkpoint.messages.js';

/** How deep a payload may nest; deeper ones are refused before JSON.stringify overflows. */
const MAX_PAYLOAD_DEPTH = 512;

/**
 * A NUL character (PostgreSQL text cannot hold it) or a lone UTF-16 surrogate (stored as U+FFFD,
 * so that two different strings would become one).
 */
// eslint-disable-next-line no-control-regex -- finding NUL is the point
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function assertSchemaName(schema: unknown): asserts schema is string {
  if (typeof schema !== 'string' || !IDENTIFIER_PATTERN.test(schema)) {
    throw new CheckpointConfigError(
      messages.invalidOptions([
        `schema must match ${IDENTIFIER_PATTERN} (got ${JSON.stringify(schema)})`,
      ]),
    );
  }
}

/** What is wrong with a string PostgreSQL must store exactly, or undefined when nothing is. */
function unstorable(value: string): string | undefined {
  const found = UNSTORABLE.exec(value);
  if (found === null) return undefined;
  return found[0] === '\u0000'
    ? `a NUL character at position ${found.index}`
    : `a lone UTF-16 surrogate at position ${found.index}`;
}

/** A checkpoint key: a non-empty string of at most 512 characters that PostgreSQL stores as is. */
export function assertKey(key: unknown): asserts key is string {
  assertText('key', key, MAX_KEY_LENGTH);
}

/** A string field stored in a text column (fingerprint, owner, queue, job id...). */
export function assertText(
  field: string,
  value: unknown,
  maxLength: number,
): asserts value is string {
  if (typeof value !== 'string' || value.length === 0 || value.length > maxLength) {
    throw new CheckpointValidationError(messages.invalidText(field, value, maxLength));
  }
  const problem = unstorable(value);
  if (problem !== undefined) {
    throw new CheckpointValidationError(messages.unstorableText(field, problem));
  }
}

/** Like assertText, for optional fields. */
export function assertOptionalText(
  field: string,
  value: unknown,
  maxLength: number,
): asserts value is string | undefined {
  if (value !== undefined) assertText(field, value, maxLength);
}

/** The epoch an ownership call names: a positive whole number, as `claim()` returned it. */
export function assertEpoch(epoch: unknown): asserts epoch is number {
  if (typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 1) {
    throw new CheckpointValidationError(messages.invalidEpoch(epoch));
  }
}

/** An ownership call's key and epoch, checked before anything else. */
export function assertOwnership(key: unknown, epoch: unknown): asserts key is string {
  assertKey(key);
  assertEpoch(epoch);
}

/**
 * The options of a write (`{ manager }`): a manager, when given, is a TypeORM EntityManager. (A
 * manager whose runner was released is refused by the repository with CheckpointStoreError: a
 * lost connection releases the runner too, and that is the database's failure, not the input's.)
 */
export function assertWriteOptions(operation: string, options: unknown): void {
  if (typeof options !== 'object' || options === null) {
    throw new CheckpointValidationError(messages.notAnObject(`${operation}: options`, options));
  }
  const manager: unknown = (options as { manager?: unknown }).manager;
  if (manager === undefined) return;
  if (
    typeof manager !== 'object' ||
    manager === null ||
    typeof (manager as { query?: unknown }).query !== 'function'
  ) {
    throw new CheckpointValidationError(messages.notAManager(operation, manager));
  }
}

/**
 * A count: a whole number from 0 to Number.MAX_SAFE_INTEGER (2^53 - 1). The columns are bigint
 * and hold more, but a JavaScript number above that is no longer exact.
 */
export function assertCount(field: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new CheckpointValidationError(messages.invalidCount(field, value));
  }
}

/** Like assertCount, for optional fields. */
export function assertOptionalCount(
  field: string,
  value: unknown,
): asserts value is number | undefined {
  if (value !== undefined) assertCount(field, value);
}

/** A state filter: one of CHECKPOINT_STATES. */
export function assertOptionalState(
  field: string,
  value: unknown,
): asserts value is CheckpointState | undefined {
  if (value === undefined) return;
  const states: readonly unknown[] = Object.values(CHECKPOINT_STATES);
  if (!states.includes(value)) {
    throw new CheckpointValidationError(
      messages.invalidState(field, value, Object.values(CHECKPOINT_STATES)),
    );
  }
}

/** `purge()`'s age: a valid Date, or days/hours/minutes/seconds as finite numbers >= 0. */
export function assertAge(value: unknown): void {
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime()))
      throw new CheckpointValidationError(messages.invalidAge('olderThan is an invalid Date'));
    return;
  }
  if (typeof value !== 'object' || value === null) {
    throw new CheckpointValidationError(
      messages.invalidAge(`olderThan must be a Date or { days, hours, minutes, seconds }`),
    );
  }
  for (const [unit, amount] of Object.entries(value)) {
    if (!['days', 'hours', 'minutes', 'seconds'].includes(unit)) {
      throw new CheckpointValidationError(messages.invalidAge(`olderThan.${unit} is not a unit`));
    }
    if (
      amount !== undefined &&
      (typeof amount !== 'number' || !Number.isFinite(amount) || amount < 0)
    ) {
      throw new CheckpointValidationError(
        messages.invalidAge(
          `olderThan.${unit} must be a finite number >= 0 (got ${String(amount)})`,
        ),
      );
    }
  }
}

/** The first reason `value` cannot be stored as JSON exactly, with its path, or undefined. */
function inexact(
  value: unknown,
  path: string,
  depth: number,
  seen: Set<object>,
): string | undefined {
  switch (typeof value) {
    case 'string': {
      const problem = unstorable(value);
      return problem === undefined ? undefined : `${path} holds ${problem}`;
    }
    case 'boolean':
      return undefined;
    case 'number':
      // -0 is stored as 0; the two are equal (===) everywhere but Object.is, so it is kept.
      return Number.isFinite(value)
        ? undefined
        : `${path} is ${String(value)}, which JSON stores as null`;
    case 'bigint':
      return `${path} is a BigInt, which JSON cannot hold: store it as a string`;
    case 'undefined':
      return `${path} is undefined, which JSON stores as null in an array`;
    case 'function':
    case 'symbol':
      return `${path} is a ${typeof value}, which JSON drops`;
  }
  if (value === null) return undefined;
  const object = value as object;
  if (depth > MAX_PAYLOAD_DEPTH) return `${path} nests deeper than ${MAX_PAYLOAD_DEPTH} levels`;
  if (seen.has(object)) return `${path} refers back to itself (a cycle), which JSON cannot hold`;
  if (Array.isArray(object)) {
    if (Object.getPrototypeOf(object) !== Array.prototype) return notPlain(path, object);
    seen.add(object);
    for (let i = 0; i < object.length; i++) {
      // A hole reads as undefined and would come back as null, like undefined itself.
      const problem = inexact((object as unknown[])[i], `${path}[${i}]`, depth + 1, seen);
      if (problem !== undefined) return problem;
    }
    seen.delete(object);
    return undefined;
  }
  const prototype: unknown = Object.getPrototypeOf(object);
  if (prototype !== Object.prototype && prototype !== null) return notPlain(path, object);
  if ('toJSON' in object)
    return `${path} has a toJSON() method, so JSON would store something else`;
  if (Object.getOwnPropertySymbols(object).length > 0)
    return `${path} has symbol keys, which JSON drops`;
  seen.add(object);
  for (const [name, item] of Object.entries(object)) {
    const where = `${path}${/^[A-Za-z_$][\w$]*$/.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`}`;
    const keyProblem = unstorable(name);
    if (keyProblem !== undefined) return `${path} has a property name with ${keyProblem}`;
    // An undefined property is left out by JSON and reads back as undefined: nothing changes.
    if (item === undefined) continue;
    const problem = inexact(item, where, depth + 1, seen);
    if (problem !== undefined) return problem;
  }
  seen.delete(object);
  return undefined;
}

function notPlain(path: string, object: object): string {
  const name = (object as { constructor?: { name?: unknown } }).constructor?.name;
  const kind = typeof name === 'string' && name !== '' ? `a ${name}` : 'an object with a prototype';
  const hint =
    object instanceof Date
      ? ': store date.toISOString() or date.getTime() and convert it back on resume'
      : ': store a plain object or array';
  return `${path} is ${kind}, which would come back from JSON as something else${hint}`;
}

/**
 * Serialises a payload for a jsonb column, or null when it is undefined. Refuses, rather than
 * rewrites, a value that would not come back from JSON exactly (NaN, Infinity, functions,
 * BigInt, Dates, Maps, class instances, cycles, NUL or lone surrogates...), and one larger than
 * the configured limit.
 */
export function toJson(field: string, value: unknown, maxBytes: number): string | null {
  if (value === undefined) return null;
  const problem = inexact(value, field, 0, new Set());
  if (problem !== undefined) {
    throw new CheckpointValidationError(messages.notSerializable(field, problem));
  }
  const json = JSON.stringify(value);
  const bytes = Buffer.byteLength(json);
  if (bytes > maxBytes)
    throw new CheckpointValidationError(messages.payloadTooLarge(field, bytes, maxBytes));
  return json;
}

/**
 * Makes text storable by replacing NUL characters and lone surrogates with U+FFFD. Only for what
 * the library records about a failure (an error's message and stack): a failure must be recorded
 * whatever its message holds, and nothing reads it back as input.
 */
export function storableText(value: string): string {
  return value.replace(new RegExp(UNSTORABLE.source, 'g'), '\uFFFD');
}
