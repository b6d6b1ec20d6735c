// Keyset paging: a page ends with an opaque token (`after`) that names its last row by the
// columns the list is ordered on, and the next page starts strictly after that row. A page deep
// in a list costs what the first one does (an index seek), unlike an OFFSET, which reads and
// throws away every row before it.
import { CheckpointValidationError } from './checkpoint.errors.js';
import { messages } from './checkpoint.messages.js';

/**
 * One page of a list. Pass `after` back (as the call's `after` option) for the next page while
 * `more` is true.
 */
export interface CheckpointPage<T> {
  items: T[];
  /** The token of the page's last entry (opaque), or null when the page is empty. */
  after: string | null;
  /** Whether entries follow this page. */
  more: boolean;
}

/** The position in a list ordered by a timestamp (sent as text, exact to the microsecond) and a key. */
export const TIME_AND_KEY = ['time', 'text'] as const;

/** A timestamptz as PostgreSQL writes it (`2026-12-05 12:33:56.123456+00`). */
const TIMESTAMP =
  /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?[+-]\d{2}(:\d{2}){0,2}$/;

/**
 * Whether a token's part is a timestamp PostgreSQL reads back: a forged one must be refused
 * here, not by the statement's cast (whose error would reach the caller as a database failure).
 */
function isTimestamp(part: unknown): boolean {
  const match = typeof part === 'string' ? TIMESTAMP.exec(part) : null;
  if (match === null) return false;
  const [year = 0, month = 0, day = 0, hour = 99, minute = 99, second = 99] = match
    .slice(1, 7)
    .map(Number);
  const date = new Date(Date.UTC(year, month - 1, day));
  return (
    date.getUTCMonth() === month - 1 &&
    date.getUTCDate() === day &&
    hour < 24 &&
    minute < 60 &&
    second < 60
  );
}

/** Text PostgreSQL stores as is: no NUL, no lone surrogate. */
// eslint-disable-next-line no-control-regex -- finding NUL is the point
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** The parts of a position: text (keys, timestamps as text) and whole numbers. */
export type CursorPart = string | number;

/** The token of a position in a list: URL-safe, opaque to callers. */
export function encodeCursor(parts: readonly CursorPart[]): string {
  return Buffer.from(JSON.stringify(parts), 'utf8').toString('base64url');
}

/**
 * Reads a token written by encodeCursor for a list ordered on columns of the given kinds
 * ('time', 'text' or 'int'); a token of another list, or a made-up one, is refused with a
 * CheckpointValidationError.
 */
export function decodeCursor<K extends ReadonlyArray<'time' | 'text' | 'int'>>(
  list: string,
  token: unknown,
  kinds: K,
): { [I in keyof K]: K[I] extends 'int' ? number : string } {
  const refuse = () => new CheckpointValidationError(messages.invalidCursor(list, token));
  if (typeof token !== 'string' || token.length === 0 || token.length > 4096) throw refuse();
  let parts: unknown;
  try {
    parts = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw refuse();
  }
  if (!Array.isArray(parts) || parts.length !== kinds.length) throw refuse();
  kinds.forEach((kind, i) => {
    const part: unknown = parts[i];
    const fits =
      kind === 'int'
        ? typeof part === 'number' && Number.isSafeInteger(part) && part >= 0
        : kind === 'time'
          ? isTimestamp(part)
          : typeof part === 'string' && !UNSTORABLE.test(part);
    if (!fits) throw refuse();
  });
  return parts as { [I in keyof K]: K[I] extends 'int' ? number : string };
}

/**
 * Turns the `limit + 1` rows a list statement read into a page: the extra row only says that
 * more follow. `position` gives the ordering columns of a row.
 */
export function toPage<R, T>(
  rows: readonly R[],
  limit: number,
  position: (row: R) => readonly CursorPart[],
  map: (row: R) => T,
): CheckpointPage<T> {
  const shown = rows.slice(0, limit);
  const last = shown[shown.length - 1];
  return {
    items: shown.map(map),
    after: last === undefined ? null : encodeCursor(position(last)),
    more: rows.length > limit,
  };
}
