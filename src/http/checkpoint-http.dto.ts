import { Type } from 'class-transformer';
import { IsEmpty, IsIn, IsInt, IsOptional, IsString, Length, Max, Min } from 'class-validator';
import { CHECKPOINT_STATES, MAX_KEY_LENGTH } from '../checkpoint.constants.js';
import { messages } from '../checkpoint.messages.js';

const STATES = Object.values(CHECKPOINT_STATES);

/**
 * Paging of every list: `limit` (1-500, default 50) and `after`, the token of the previous page
 * (keyset paging: a deep page costs what the first does). `offset` is refused with a 400.
 */
export class PageQuery {
  /** At most this many entries (default 50). */
  @IsOptional()
  @Type(() => Number)
  @IsInt({ message: '$property must be a whole number' })
  @Min(1)
  @Max(500)
  limit?: number;

  /** The `after` token of the previous page. */
  @IsOptional()
  @IsString()
  @Length(1, 4096)
  after?: string;

  /** Gone: a deep offset reads every row before it. Named so that it is refused clearly. */
  @IsEmpty({ message: messages.offsetRefused() })
  offset?: unknown;
}

/** `GET keys/:key/failed-items`: at most `limit` items (1-1000, default 200), after `after`. */
export class FailedItemsQueryDto {
  @IsOptional()
  @Type(() => Number)
  @IsInt({ message: '$property must be a whole number' })
  @Min(1)
  @Max(1000)
  limit?: number;

  /** The `after` token of the previous page. */
  @IsOptional()
  @IsString()
  @Length(1, 4096)
  after?: string;
}

/** Filters of `GET keys`. */
export class ListKeysQuery extends PageQuery {
  @IsOptional()
  @IsIn(STATES, { message: `$property must be one of ${STATES.join(', ')}` })
  state?: string;

  @IsOptional()
  @IsString()
  @Length(1, MAX_KEY_LENGTH)
  runId?: string;

  @IsOptional()
  @IsString()
  @Length(1, 200)
  queue?: string;

  /** A part of the key. */
  @IsOptional()
  @IsString()
  @Length(1, MAX_KEY_LENGTH)
  search?: string;
}

/** A key named in the path. */
export class KeyParams {
  @IsString()
  @Length(1, MAX_KEY_LENGTH)
  key!: string;
}

/** A run named in the path. */
export class RunParams {
  @IsString()
  @Length(1, MAX_KEY_LENGTH)
  id!: string;
}

/** Body of `POST keys/:key/rewind`. */
export class RewindBody {
  /** The item to resume from (0 starts over); at most the key's current position. */
  @Type(() => Number)
  @IsInt({ message: '$property must be a whole number' })
  @Min(0)
  toIndex!: number;

  /** The epoch read from `GET keys/:key`; the rewind is refused (409) when it moved. */
  @Type(() => Number)
  @IsInt({ message: '$property must be a whole number' })
  @Min(1)
  expectedEpoch!: number;
}
