import { randomUUID } from 'node:crypto';
import {
  Catch,
  HttpException,
  HttpStatus,
  Logger,
  type ArgumentsHost,
  type ExceptionFilter,
} from '@nestjs/common';
import {
  CheckpointEpochMovedError,
  CheckpointError,
  CheckpointLeaseConflictError,
  CheckpointStoreError,
  CheckpointValidationError,
} from '../checkpoint.errors.js';
import { CheckpointRedriveError } from '../items/items.errors.js';
import { httpMessages } from './checkpoint-http.messages.js';

interface JsonResponse {
  headersSent?: boolean;
  status(code: number): { json(body: unknown): void };
}

const logger = new Logger('CheckpointHttpModule');

/**
 * Every answer of the module that is not a success: HTTP errors as Nest gives them, the
 * library's typed errors mapped to what they mean (400, 409, 503), and anything else a 500.
 * A 5xx never carries the cause's text (which may be PostgreSQL's): the body has a reference
 * and the server's log has the cause, under that reference.
 */
@Catch()
export class CheckpointHttpExceptionFilter implements ExceptionFilter {
  catch(error: unknown, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<JsonResponse>();
    if (response.headersSent === true) {
      // An event stream that already answered: only the log can still say it.
      logger.error(`a live stream failed: ${describe(error)}`);
      return;
    }
    const answer = this.answer(error);
    response.status(answer.status).json(answer.body);
  }

  private answer(error: unknown): { status: number; body: object } {
    if (error instanceof HttpException && error.getStatus() < 500) {
      const body = error.getResponse();
      return {
        status: error.getStatus(),
        body: typeof body === 'string' ? { statusCode: error.getStatus(), message: body } : body,
      };
    }
    if (error instanceof CheckpointValidationError) {
      return this.client(HttpStatus.BAD_REQUEST, error);
    }
    if (
      error instanceof CheckpointEpochMovedError ||
      error instanceof CheckpointLeaseConflictError ||
      error instanceof CheckpointRedriveError
    ) {
      return this.client(HttpStatus.CONFLICT, error);
    }
    const reference = randomUUID();
    const store = error instanceof CheckpointStoreError;
    logger.error(`request failed (reference ${reference}): ${describe(error)}`);
    const status = store ? HttpStatus.SERVICE_UNAVAILABLE : HttpStatus.INTERNAL_SERVER_ERROR;
    return {
      status,
      body: {
        statusCode: status,
        error: store ? 'CheckpointStoreError' : 'InternalServerError',
        message: store ? httpMessages.storeFailed(reference) : httpMessages.internal(reference),
      },
    };
  }

  private client(status: number, error: CheckpointError): { status: number; body: object } {
    return { status, body: { statusCode: status, error: error.name, message: error.message } };
  }
}

/** An error with its stack and its causes, for the log. */
function describe(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    parts.push(
      current instanceof Error ? (current.stack ?? current.message) : JSON.stringify(current),
    );
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join('\ncaused by: ');
}
