import { Inject, Injectable, Module, type DynamicModule, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type * as Terminus from '@nestjs/terminus';
import { CHECKPOINT_OPTIONS } from '../checkpoint.constants.js';
import { CheckpointConfigError } from '../checkpoint.errors.js';
import type { ResolvedCheckpointOptions } from '../checkpoint.options.js';
import { CheckpointRepository } from '../checkpoint.repository.js';
import { CheckpointService } from '../checkpoint.service.js';
import { withTimeout } from '../with-timeout.js';
import { healthSql } from './health.sql.js';
import { loadPeer } from '../checkpoint.peers.js';

// Not a static import: index.ts names the package to install when it is missing (health.peers.ts).
const { HealthIndicatorService, TerminusModule } = loadPeer<typeof Terminus>('@nestjs/terminus');

/** Options of `CheckpointHealthModule.forRoot()`. */
export interface CheckpointHealthOptions {
  /**
   * A running key that has not advanced for longer than this is stalled (default 60 000 ms).
   * Make it longer than the slowest batch.
   */
  stallMs?: number;
  /**
   * How long a check waits for the database before it reports down (default 5 000 ms): a
   * health endpoint must answer even when the database does not.
   */
  timeoutMs?: number;
}

const CHECKPOINT_HEALTH_OPTIONS = Symbol('checkpoint:health-options');

/** A stalled key, as the indicator reports it. */
export interface StalledKey {
  key: string;
  owner: string | null;
  attempt: number;
  idleMs: number;
}

/**
 * Terminus health indicator of checkpointed work: down when a running key (in any process) has
 * not advanced for longer than `stallMs`, or when this process's checkpoint session is lost; up
 * again when the work moves, a new attempt takes over, or the session is back.
 */
@Injectable()
export class CheckpointHealthIndicator implements OnModuleInit {
  private service!: CheckpointService;
  private repository!: CheckpointRepository;
  private sql!: ReturnType<typeof healthSql>;

  constructor(
    @Inject(HealthIndicatorService) private readonly health: Terminus.HealthIndicatorService,
    @Inject(ModuleRef) private readonly moduleRef: ModuleRef,
    @Inject(CHECKPOINT_HEALTH_OPTIONS) private readonly options: Required<CheckpointHealthOptions>,
  ) {}

  onModuleInit(): void {
    // Found wherever CheckpointModule is registered (no isGlobal needed).
    this.service = this.moduleRef.get(CheckpointService, { strict: false });
    this.repository = this.moduleRef.get(CheckpointRepository, { strict: false });
    const options = this.moduleRef.get<ResolvedCheckpointOptions>(CHECKPOINT_OPTIONS, {
      strict: false,
    });
    this.sql = healthSql(options.schema);
  }

  /** For `HealthCheckService.check([() => indicator.isHealthy('checkpoint')])`. */
  async isHealthy<const Key extends string = 'checkpoint'>(
    key: Key = 'checkpoint' as Key,
  ): Promise<Terminus.HealthIndicatorResult<Key>> {
    const indicator = this.health.check(key);
    let found: { lost: string } | { stalled: StalledKey[] };
    try {
      // The look goes on after a timeout, bounded by the module's statementTimeoutMs.
      const ms = this.options.timeoutMs;
      found = await withTimeout(this.look(), ms, `no answer within ${ms} ms`);
    } catch (error) {
      // No answer in time: a lost session says why (its reconnection takes up to the lease TTL).
      const lost = this.service.sessionLost;
      if (lost !== undefined) return indicator.down({ session: 'lost', reason: lost });
      return indicator.down({ database: (error as Error).message });
    }
    if ('lost' in found) return indicator.down({ session: 'lost', reason: found.lost });
    if (found.stalled.length > 0) {
      return indicator.down({ stallMs: this.options.stallMs, stalled: found.stalled });
    }
    return indicator.up({ stallMs: this.options.stallMs });
  }

  /** The lost session's reason (after one round trip to recover), else the stalled keys. */
  private async look(): Promise<{ lost: string } | { stalled: StalledKey[] }> {
    const lost = await this.service.sessionProblem();
    if (lost !== null) return { lost };
    const { rows } = await this.repository.run<{
      key: string;
      owner: string | null;
      attempt: number;
      idle_ms: string;
    }>('health', undefined, this.sql.stalled(this.options.stallMs, 20));
    return {
      stalled: rows.map((row) => ({
        key: row.key,
        owner: row.owner,
        attempt: row.attempt,
        idleMs: Number(row.idle_ms),
      })),
    };
  }
}

/**
 * Provides `CheckpointHealthIndicator` (needs `@nestjs/terminus`, and CheckpointModule in the same
 * application). Import it beside `TerminusModule` in the module of your health controller.
 */
@Module({})
export class CheckpointHealthModule {
  /** Provides CheckpointHealthIndicator with these thresholds; import TerminusModule beside it. */
  static forRoot(options: CheckpointHealthOptions = {}): DynamicModule {
    const stallMs = options.stallMs ?? 60_000;
    const timeoutMs = options.timeoutMs ?? 5_000;
    for (const [name, value] of [
      ['stallMs', stallMs],
      ['timeoutMs', timeoutMs],
    ] as const) {
      if (!Number.isInteger(value) || value < 1) {
        throw new CheckpointConfigError(
          `CheckpointHealthModule: ${name} must be a whole number of milliseconds >= 1 (got ${String(options[name])})`,
        );
      }
    }
    return {
      module: CheckpointHealthModule,
      imports: [TerminusModule],
      providers: [
        { provide: CHECKPOINT_HEALTH_OPTIONS, useValue: { stallMs, timeoutMs } },
        CheckpointHealthIndicator,
      ],
      exports: [CheckpointHealthIndicator],
    };
  }
}
