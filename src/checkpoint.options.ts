import {
  IsBoolean,
  IsInt,
  IsObject,
  IsOptional,
  IsString,
  Matches,
  Max,
  Min,
  validateSync,
} from 'class-validator';
import type { ConstructorOptions, PgBoss } from 'pg-boss';
import {
  DEFAULT_DIRECT_THRESHOLD,
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_SCHEMA,
  IDENTIFIER_PATTERN,
} from './checkpoint.constants.js';
import { CheckpointConfigError } from './checkpoint.errors.js';
import { messages } from './checkpoint.messages.js';

const wholeNumber = (min: number) => ({
  message: `$property must be a whole number >= ${min} (got $value)`,
});

/**
 * Options of `CheckpointModule.forRoot()` / `forRootAsync()`. Validated at bootstrap: a bad option
 * stops start-up with a message naming it and what is allowed.
 */
export class CheckpointModuleOptions {
  /** Schema of the library's tables (default `checkpoint`): a lower-case SQL identifier. */
  @IsOptional()
  @IsString({ message: '$property must be a string' })
  @Matches(IDENTIFIER_PATTERN, {
    message: `$property must be a lower-case identifier matching ${IDENTIFIER_PATTERN} (got "$value")`,
  })
  schema?: string;

  /** Apply the library's migrations at bootstrap (default true). */
  @IsOptional()
  @IsBoolean({ message: '$property must be true or false (got $value)' })
  migrationsRun?: boolean;

  /** Largest JSON payload (intermediateResult, metadata, cursor, result) in bytes (default 1 MiB). */
  @IsOptional()
  @IsInt(wholeNumber(1))
  @Min(1, wholeNumber(1))
  @Max(256 * 1024 * 1024, { message: '$property must be at most 268435456 (256 MiB) (got $value)' })
  maxPayloadBytes?: number;

  /**
   * Inputs of at most this many items run directly in the caller; larger ones go to the queue
   * (`CheckpointService.dispatch`). Default 50.
   */
  @IsOptional()
  @IsInt(wholeNumber(0))
  @Min(0, wholeNumber(0))
  directThreshold?: number;

  /** How long shutdown waits for in-flight batches to reach a boundary (default 30 000 ms). */
  @IsOptional()
  @IsInt(wholeNumber(0))
  @Min(0, wholeNumber(0))
  shutdownTimeoutMs?: number;

  /**
   * pg-boss: its constructor options (the module starts and stops it), or an instance the
   * application manages. Without it no pg-boss is started.
   */
  @IsOptional()
  @IsObject({ message: '$property must be pg-boss constructor options or a PgBoss instance' })
  boss?: ConstructorOptions | PgBoss;
}

/** The options with every default applied. */
export interface ResolvedCheckpointOptions {
  schema: string;
  migrationsRun: boolean;
  maxPayloadBytes: number;
  directThreshold: number;
  shutdownTimeoutMs: number;
  boss?: ConstructorOptions | PgBoss;
}

/** Validates raw options and applies defaults; throws CheckpointConfigError naming each problem. */
export function resolveOptions(raw: unknown): ResolvedCheckpointOptions {
  if (raw === null || typeof raw !== 'object') {
    throw new CheckpointConfigError(messages.invalidOptions(['options must be an object']));
  }
  const options = Object.assign(new CheckpointModuleOptions(), raw);
  const errors = validateSync(options, { whitelist: true, forbidNonWhitelisted: true });
  if (errors.length > 0) {
    const problems = errors.flatMap((error) =>
      Object.values(error.constraints ?? {}).map((text) =>
        error.constraints?.whitelistValidation ? `unknown option "${error.property}"` : text,
      ),
    );
    throw new CheckpointConfigError(messages.invalidOptions(problems));
  }
  return {
    schema: options.schema ?? DEFAULT_SCHEMA,
    migrationsRun: options.migrationsRun ?? true,
    maxPayloadBytes: options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES,
    directThreshold: options.directThreshold ?? DEFAULT_DIRECT_THRESHOLD,
    shutdownTimeoutMs: options.shutdownTimeoutMs ?? 30_000,
    boss: options.boss,
  };
}
