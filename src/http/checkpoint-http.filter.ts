import { Catch, HttpStatus, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import {
  CheckpointEpochMovedError,
  CheckpointError,
  CheckpointLeaseConflictError,
  CheckpointValidationError,
} from '../checkpoint.errors.js';

interface JsonResponse {
  status(code: number): { json(body: unknown): void };
}

/** Maps the library's typed errors to HTTP answers that say what to do. */
@Catch(CheckpointError)
export class CheckpointHttpExceptionFilter implements ExceptionFilter {
  catch(error: CheckpointError, host: ArgumentsHost): void {
    const status =
      error instanceof CheckpointValidationError
        ? HttpStatus.BAD_REQUEST
        : error instanceof CheckpointEpochMovedError ||
            error instanceof CheckpointLeaseConflictError
          ? HttpStatus.CONFLICT
          : HttpStatus.INTERNAL_SERVER_ERROR;
    host
      .switchToHttp()
      .getResponse<JsonResponse>()
      .status(status)
      .json({ statusCode: status, error: error.name, message: error.message });
  }
}
