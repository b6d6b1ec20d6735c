import { CheckpointError } from '../checkpoint.errors.js';
import { itemMessages } from './items.messages.js';

/**
 * More items failed than `skip.limit` allows. The attempt fails; the checkpoint stays at the
 * item that would have gone over the limit and the ledger keeps every item skipped before it,
 * so a later attempt (with a higher limit, or after a fix) resumes there.
 */
export class CheckpointSkipLimitError extends CheckpointError {
  constructor(
    readonly key: string,
    /** The item index the attempt stopped at. */
    readonly itemIndex: number,
    /** Items of the key in the ledger when the limit was reached. */
    readonly skippedItems: number,
    allowed: string,
    cause: unknown,
  ) {
    super(itemMessages.skipLimit(key, allowed, skippedItems, itemIndex, describe(cause)), {
      cause,
    });
  }
}

/** `name: message` of a thrown value, for messages and the ledger. */
export function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/**
 * A redrive could not send what must run again (the key's pg-boss job is gone, still active, or
 * there is no pg-boss to send it with). Nothing was marked: the request rolled back whole.
 */
export class CheckpointRedriveError extends CheckpointError {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(message);
  }
}

/** `Class (code): message` of a thrown value, for the failure log lines. */
export function summarize(error: unknown): string {
  const { className, code, message } = errorDetail(error);
  return `${className}${code === null ? '' : ` (${String(code)})`}: ${message}`;
}

/** What the ledger keeps of an error. */
export interface ErrorDetail {
  /** `error.name` (most classes leave it `Error`). */
  name: string;
  /** The error's class, `constructor.name`; for a thrown value that is no object, its type. */
  className: string;
  /** `error.code` when it is a string or a number (`'ECONNRESET'`, `429`), else null. */
  code: string | number | null;
  message: string;
}

/** Longest message the ledger keeps; the rest is cut (a row stays narrow). */
const MAX_MESSAGE_LENGTH = 8_000;

/** What the ledger keeps of a thrown value: class, code and message, text PostgreSQL stores. */
export function errorDetail(error: unknown): ErrorDetail {
  if (error instanceof Error) {
    const code: unknown = (error as { code?: unknown }).code;
    const className = storable(error.constructor.name);
    return {
      name: storable(error.name),
      className: className === '' ? storable(error.name) : className,
      code:
        typeof code === 'string'
          ? storable(code)
          : typeof code === 'number' && Number.isFinite(code)
            ? code
            : null,
      message: storable(error.message),
    };
  }
  const type =
    error === null
      ? 'null'
      : typeof error === 'object'
        ? storable(error.constructor?.name ?? 'Object')
        : typeof error;
  return { name: type, className: type, code: null, message: storable(String(error)) };
}

/** PostgreSQL text holds no NUL; an overlong message is cut. */
function storable(text: string): string {
  // eslint-disable-next-line no-control-regex -- finding NUL is the point
  const clean = text.replace(/\u0000/g, '\uFFFD');
  return clean.length > MAX_MESSAGE_LENGTH ? `${clean.slice(0, MAX_MESSAGE_LENGTH)}…` : clean;
}
