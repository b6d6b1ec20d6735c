// Checks applied before anything is written: a bad input throws and writes nothing.
import { IDENTIFIER_PATTERN, MAX_KEY_LENGTH } from './checkpoint.constants.js';
import { CheckpointConfigError, CheckpointValidationError } from './checkpoint.errors.js';
import { messages } from './checkpoint.messages.js';

export function assertSchemaName(schema: unknown): asserts schema is string {
  if (typeof schema !== 'string' || !IDENTIFIER_PATTERN.test(schema)) {
    throw new CheckpointConfigError(
      messages.invalidOptions([
        `schema must match ${IDENTIFIER_PATTERN} (got ${JSON.stringify(schema)})`,
      ]),
    );
  }
}

export function assertKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_LENGTH) {
    throw new CheckpointValidationError(messages.invalidKey(key, MAX_KEY_LENGTH));
  }
}

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

/**
 * Serialises a payload for a jsonb column, or null when it is undefined. Throws when the value
 * cannot round-trip through JSON or is larger than the configured limit.
 */
export function toJson(field: string, value: unknown, maxBytes: number): string | null {
  if (value === undefined) return null;
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (error) {
    throw new CheckpointValidationError(
      messages.notSerializable(field, error instanceof Error ? error.message : String(error)),
    );
  }
  if (json === undefined) {
    throw new CheckpointValidationError(
      messages.notSerializable(field, `a ${typeof value} has no JSON form`),
    );
  }
  const bytes = Buffer.byteLength(json);
  if (bytes > maxBytes)
    throw new CheckpointValidationError(messages.payloadTooLarge(field, bytes, maxBytes));
  return json;
}
