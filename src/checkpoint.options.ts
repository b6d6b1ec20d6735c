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
  DEFAULT_DATABASE_OUTAGE_MS,
  DEFAULT_DIRECT_THRESHOLD,
  DEFAULT_LEASE_TTL_MS,
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_SCHEMA,
  DEFAULT_STALL_WARN_MS,
  DEFAULT_STATEMENT_TIMEOUT_MS,
  IDENTIFIER_PATTERN,
} from './checkpoint.constants.js';
import { CheckpointConfigError } from './checkpoint.errors.js';
import { messages } from './checkpoint.messages.js';
import { itemPolicyProblems, type QueueItemPolicies } from './item-policy.js';

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
   * `CheckpointRuns.start()` runs inputs of at most this many items directly in the caller;
   * larger ones go to the queue as chunks. Default 50 (per call: `start`'s own `directThreshold`).
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
   * How long an attempt's ownership of a key lasts without renewal (default 30 000 ms). Each
   * process renews all its leases in one statement every third of it. An owner that cannot
   * renew for this long (frozen, partitioned) loses the key to the next claimant; a crashed
   * owner's key is free at once (its session is gone).
   */
  @IsOptional()
  @IsInt(wholeNumber(1000))
  @Min(1000, wholeNumber(1000))
  @Max(3_600_000, { message: '$property must be at most 3600000 (one hour) (got $value)' })
  leaseTtlMs?: number;

  /**
   * The longest a statement of the library may wait, for a lock say, before it is cancelled
   * and the caller gets a CheckpointStoreError (default 60 000 ms).
   */
  @IsOptional()
  @IsInt(wholeNumber(100))
  @Min(100, wholeNumber(100))
  statementTimeoutMs?: number;

  /** After this long a waiting statement is logged with what blocks it (default 5 000 ms). */
  @IsOptional()
  @IsInt(wholeNumber(10))
  @Min(10, wholeNumber(10))
  stallWarnMs?: number;

  /**
   * How long a running attempt waits for the database when it becomes unreachable (a restart,
   * a lost connection) before it fails, resuming in place when it is back (default 60 000 ms).
   */
  @IsOptional()
  @IsInt(wholeNumber(0))
  @Min(0, wholeNumber(0))
  databaseOutageMs?: number;

  /**
   * pg-boss: its constructor options (the module starts and stops it), or an instance the
   * application manages. Without it no pg-boss is started.
   */
  @IsOptional()
  @IsObject({ message: '$property must be pg-boss constructor options or a PgBoss instance' })
  boss?: ConstructorOptions | PgBoss;

  /**
   * Purges completed and cancelled keys (with their failed items) and runs not updated for
   * `days`, on a pg-boss schedule (`cron`, default `'17 3 * * *'`): whichever worker fetches the
   * scheduled job does it. Needs `boss`.
   */
  @IsOptional()
  @IsObject({ message: '$property must be an object { days, cron? }' })
  retention?: RetentionOptions;

  /**
   * How this process reaches PostgreSQL (see docs/connections.md): `pooling` is `'none'`
   * (direct), `'session'` or `'transaction'` (a pooler such as PgBouncer in that mode); absent,
   * it is detected at bootstrap. `directUrl` (transaction pooling only) is a URL that reaches
   * PostgreSQL without the pooler, for the lease session and LISTEN.
   */
  @IsOptional()
  @IsObject({ message: '$property must be an object { pooling?, directUrl? }' })
  connection?: ConnectionOptions;

  /**
   * Retry and skip policies per queue, by queue name, for the `@Checkpointed({ queue })`
   * methods of that queue: `{ screening: { retry: { limit: 5 }, skip: { limit: { ratio: 0.02 } } } }`.
   * The decorator's values win field by field; a field neither gives is left out. So a skip
   * limit or a retry budget can come from configuration. See docs/failing-items.md.
   */
  @IsOptional()
  @IsObject({ message: '$property must be an object { [queue]: { retry?, skip? } }' })
  queues?: Record<string, QueueItemPolicies>;
}

/** The pooling in front of PostgreSQL. */
export type Pooling = 'none' | 'session' | 'transaction';
const POOLINGS: readonly Pooling[] = ['none', 'session', 'transaction'];

/** The `connection` option. */
export interface ConnectionOptions {
  /** Absent: detected at bootstrap (a transaction pooler is told by its shared server connections). */
  pooling?: Pooling;
  /** With `pooling: 'transaction'`: PostgreSQL without the pooler (a `postgres://` URL). */
  directUrl?: string;
}

/** The `retention` option. */
export interface RetentionOptions {
  /** Purge completed and cancelled work not updated for this many days (a whole number >= 1). */
  days: number;
  /** When to purge, as a cron expression (default `'17 3 * * *'`: daily at 03:17). */
  cron?: string;
}

const DEFAULT_RETENTION_CRON = '17 3 * * *';

/** The options with every default applied. */
export interface ResolvedCheckpointOptions {
  schema: string;
  migrationsRun: boolean;
  maxPayloadBytes: number;
  directThreshold: number;
  shutdownTimeoutMs: number;
  leaseTtlMs: number;
  statementTimeoutMs: number;
  stallWarnMs: number;
  databaseOutageMs: number;
  boss?: ConstructorOptions | PgBoss;
  retention?: Required<RetentionOptions>;
  connection: ConnectionOptions;
  queues: Readonly<Record<string, QueueItemPolicies>>;
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
  const retention = options.retention;
  if (retention !== undefined) {
    const problems = [];
    if (!Number.isInteger(retention.days) || retention.days < 1)
      problems.push(
        `retention.days must be a whole number of days >= 1 (got ${String(retention.days)})`,
      );
    if (
      retention.cron !== undefined &&
      (typeof retention.cron !== 'string' || retention.cron.trim() === '')
    )
      problems.push('retention.cron must be a cron expression such as "17 3 * * *"');
    if (options.boss === undefined)
      problems.push('retention needs the boss option: the purge runs on a pg-boss schedule');
    if (problems.length > 0) throw new CheckpointConfigError(messages.invalidOptions(problems));
  }
  const connection = checkConnection(options.connection ?? {}, options.boss);
  const queues = options.queues ?? {};
  const queueProblems = Object.entries(queues).flatMap(([queue, policies]) => {
    const prefix = `queues[${JSON.stringify(queue)}].`;
    if (policies === null || typeof policies !== 'object' || Array.isArray(policies))
      return [`${prefix.slice(0, -1)} must be an object { retry?, skip? }`];
    const unknown = Object.keys(policies).filter((name) => name !== 'retry' && name !== 'skip');
    return [
      ...unknown.map((name) => `unknown option "${prefix}${name}" (allowed: retry, skip)`),
      ...itemPolicyProblems(policies, { prefix, partial: true }),
    ];
  });
  if (queueProblems.length > 0)
    throw new CheckpointConfigError(messages.invalidOptions(queueProblems));
  return {
    connection,
    queues,
    schema: options.schema ?? DEFAULT_SCHEMA,
    migrationsRun: options.migrationsRun ?? true,
    maxPayloadBytes: options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES,
    directThreshold: options.directThreshold ?? DEFAULT_DIRECT_THRESHOLD,
    shutdownTimeoutMs: options.shutdownTimeoutMs ?? 30_000,
    leaseTtlMs: options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS,
    statementTimeoutMs: options.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS,
    stallWarnMs: options.stallWarnMs ?? DEFAULT_STALL_WARN_MS,
    databaseOutageMs: options.databaseOutageMs ?? DEFAULT_DATABASE_OUTAGE_MS,
    boss: options.boss,
    ...(retention === undefined
      ? {}
      : { retention: { days: retention.days, cron: retention.cron ?? DEFAULT_RETENTION_CRON } }),
  };
}

function checkConnection(
  connection: ConnectionOptions,
  boss: ConstructorOptions | PgBoss | undefined,
): ConnectionOptions {
  const problems: string[] = [];
  const { pooling, directUrl } = connection;
  const unknown = Object.keys(connection).filter(
    (name) => name !== 'pooling' && name !== 'directUrl',
  );
  for (const name of unknown) problems.push(`unknown option "connection.${name}"`);
  if (pooling !== undefined && !POOLINGS.includes(pooling))
    problems.push(
      `connection.pooling must be 'none', 'session' or 'transaction' (got ${JSON.stringify(pooling)})`,
    );
  if (directUrl !== undefined) {
    if (typeof directUrl !== 'string' || !/^postgres(ql)?:\/\/./.test(directUrl))
      problems.push(
        'connection.directUrl must be a postgres:// URL that reaches PostgreSQL without the pooler',
      );
    else if (pooling !== 'transaction')
      problems.push(
        "connection.directUrl is for pooling: 'transaction' (the session features go through it); set pooling, or leave directUrl out",
      );
  }
  // pg-boss LISTENs on its own pool's connections: a transaction pooler loses the subscription.
  if (pooling === 'transaction' && isBossOptions(boss) && boss.useListenNotify === true)
    problems.push(
      'boss.useListenNotify cannot work through a transaction pooler (LISTEN needs a session); leave it off: pg-boss polls',
    );
  if (problems.length > 0) throw new CheckpointConfigError(messages.invalidOptions(problems));
  return {
    ...(pooling === undefined ? {} : { pooling }),
    ...(directUrl === undefined ? {} : { directUrl }),
  };
}

function isBossOptions(boss: ConstructorOptions | PgBoss | undefined): boss is ConstructorOptions {
  return boss !== undefined && typeof (boss as { start?: unknown }).start !== 'function';
}
