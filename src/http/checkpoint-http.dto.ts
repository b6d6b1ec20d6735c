import type * as ClassTransformer from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsEmpty,
  IsIn,
  IsInt,
  IsOptional,
  Max,
  Min,
  ValidateBy,
  type ValidationOptions,
} from 'class-validator';
import { CHECKPOINT_STATES, MAX_KEY_LENGTH } from '../checkpoint.constants.js';
import { CheckpointValidationError } from '../checkpoint.errors.js';
import { messages } from '../checkpoint.messages.js';
import { assertText } from '../checkpoint.validation.js';
import { loadPeer } from '../checkpoint.peers.js';

// Not a static import: index.ts names the package to install when it is missing (see http.peers.ts).
const { Type } = loadPeer<typeof ClassTransformer>('class-transformer');

const STATES = Object.values(CHECKPOINT_STATES);
const WHOLE = { message: '$property must be a whole number' };
const SAFE = { message: '$property must be at most Number.MAX_SAFE_INTEGER (2^53 - 1)' };

/**
 * A string PostgreSQL stores as is, checked by the library's own rule (length, no NUL, no lone
 * surrogate), with the library's message.
 */
function StorableText(maxLength: number, options?: ValidationOptions): PropertyDecorator {
  let problem = '';
  return ValidateBy(
    {
      name: 'storableText',
      validator: {
        validate: (value: unknown, args) => {
          try {
            assertText(args?.property ?? 'value', value, maxLength);
            return true;
          } catch (error) {
            if (!(error instanceof CheckpointValidationError)) throw error;
            problem = error.message;
            return false;
          }
        },
        defaultMessage: () => problem,
      },
    },
    options,
  );
}

/**
 * Paging of every list: `limit` (1-500, default 50) and `after`, the token of the previous page
 * (keyset paging: a deep page costs what the first does). `offset` is refused with a 400.
 */
export class PageQuery {
  /** At most this many entries (default 50). */
  @IsOptional()
  @Type(() => Number)
  @IsInt(WHOLE)
  @Min(1)
  @Max(500)
  limit?: number;

  /** The `after` token of the previous page. */
  @IsOptional()
  @StorableText(4096)
  after?: string;

  /** Gone: a deep offset reads every row before it. Named so that it is refused clearly. */
  @IsEmpty({ message: messages.offsetRefused() })
  offset?: unknown;
}

/** `GET keys/:key/failed-items`: at most `limit` items (1-1000, default 200), after `after`. */
export class FailedItemsQueryDto {
  @IsOptional()
  @Type(() => Number)
  @IsInt(WHOLE)
  @Min(1)
  @Max(1000)
  limit?: number;

  /** The `after` token of the previous page. */
  @IsOptional()
  @StorableText(4096)
  after?: string;
}

/** `GET runs/:id/throughput`: how many equal slices of the run's life (2-200, default 60). */
export class ThroughputQuery {
  @IsOptional()
  @Type(() => Number)
  @IsInt(WHOLE)
  @Min(2)
  @Max(200)
  slices?: number;
}

/** Filters of `GET keys`. */
export class ListKeysQuery extends PageQuery {
  @IsOptional()
  @IsIn(STATES, { message: `$property must be one of ${STATES.join(', ')}` })
  state?: string;

  @IsOptional()
  @StorableText(MAX_KEY_LENGTH)
  runId?: string;

  @IsOptional()
  @StorableText(200)
  queue?: string;

  /** A part of the key, or a run id, or a pg-boss job id. */
  @IsOptional()
  @StorableText(MAX_KEY_LENGTH)
  search?: string;
}

/** A key named in the path. */
export class KeyParams {
  @StorableText(MAX_KEY_LENGTH)
  key!: string;
}

/** A run named in the path. */
export class RunParams {
  @StorableText(MAX_KEY_LENGTH)
  id!: string;
}

/** Body of `POST keys/:key/rewind`. */
export class RewindBody {
  /** The item to resume from (0 starts over); at most the key's current position. */
  @IsInt(WHOLE)
  @Min(0)
  @Max(Number.MAX_SAFE_INTEGER, SAFE)
  toIndex!: number;

  /** The epoch read from `GET keys/:key`; the rewind is refused (409) when it moved. */
  @IsInt(WHOLE)
  @Min(1)
  @Max(Number.MAX_SAFE_INTEGER, SAFE)
  expectedEpoch!: number;
}

/** Body of `POST keys/:key/redrive`: all of the key's ledger, or the items named. */
export class RedriveBody {
  /** Item indexes from the key's ledger (default: all of them). */
  @IsOptional()
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(1000)
  @IsInt({ each: true, message: '$property must hold whole numbers' })
  @Min(0, { each: true })
  @Max(Number.MAX_SAFE_INTEGER, { each: true, ...SAFE })
  items?: number[];
}
