// The public API of nestjs-checkpoint.
export { CheckpointModule } from './checkpoint.module.js';
export {
  CheckpointModuleOptions,
  type ConnectionOptions,
  type Pooling,
  type RetentionOptions,
} from './checkpoint.options.js';
export type { CheckpointModuleExtras } from './checkpoint.module-definition.js';
export { CheckpointService, type ClaimedCheckpoint } from './checkpoint.service.js';
export { CheckpointQueues } from './boss/checkpoint-queues.js';
export { CheckpointRuns, chunkJobId } from './runs/runs.service.js';
export { OnRunCompleted } from './runs/on-run-completed.decorator.js';
export { RUN_STATES, type RunState } from './checkpoint.constants.js';
export { CheckpointRunConflictError, CheckpointRunNotFoundError } from './runs/runs.errors.js';
export type {
  ListRunsOptions,
  PlanRunOptions,
  Run,
  RunChunk,
  RunChunkData,
  RunPlan,
  StartedRun,
  StartRunOptions,
} from './runs/runs.interfaces.js';
export type { ChunkPlan } from './runs/runs.plan.js';
export { CheckpointJobs, type JobWork, type RunJobOptions } from './boss/checkpoint-jobs.js';
export { InjectCheckpointBoss } from './boss/checkpoint-boss.js';
export {
  Checkpointed,
  type CheckpointedQueueDecorator,
} from './decorators/checkpointed.decorator.js';
export { CheckpointCtx, CHECKPOINT_CONTEXT } from './decorators/checkpoint-ctx.decorator.js';
export {
  CHECKPOINT_BOSS,
  CHECKPOINT_CONTROLS,
  CHECKPOINT_STATES,
  type CheckpointControl,
  type CheckpointState,
} from './checkpoint.constants.js';
export {
  CheckpointError,
  CheckpointConfigError,
  CheckpointValidationError,
  CheckpointStoreError,
  CheckpointLeaseConflictError,
  CheckpointFencedError,
  CheckpointInputChangedError,
  CheckpointAbortedError,
  CheckpointPausedError,
  CheckpointCancelledError,
  CheckpointEpochMovedError,
  CheckpointMigrationLockError,
} from './checkpoint.errors.js';
export { CheckpointPeerMissingError } from './checkpoint.peers.js';
export type {
  AdvanceProgress,
  CheckpointData,
  CheckpointProgress,
  CheckpointRecord,
  CheckpointRunChunk,
  Claim,
  ClaimOptions,
  ControlAction,
  ListOptions,
  PurgeOptions,
  RewindOptions,
  WriteOptions,
} from './checkpoint.interfaces.js';
export type { AdaptiveBatchSize } from './batch-sizer.js';
export type {
  CheckpointAttemptProgress,
  CheckpointBatch,
  CheckpointContext,
  CheckpointedOptions,
  CheckpointQueueOptions,
  CheckpointWorkOptions,
  FetchPage,
  OnCompleted,
  OnInputChange,
} from './checkpointed.interface.js';
export { FailedItemsService } from './items/failed-items.service.js';
export { CheckpointRedriveError, CheckpointSkipLimitError } from './items/items.errors.js';
export type {
  FailedItem,
  FailedItemsQuery,
  RedriveOptions,
  RedriveRequest,
} from './items/failed-item.interface.js';
export type {
  BackoffOptions,
  ErrorClass,
  ErrorMatcher,
  QueueItemPolicies,
  RetryPolicy,
  SkipLimit,
  SkipPolicy,
} from './item-policy.js';
export type { BatchMode } from './items/item-recovery.js';
export type { CheckpointPage } from './page-cursor.js';
export type { PurgeCounts } from './checkpoint.purge.js';
export {
  checkpointMigrations,
  createCheckpointTypeOrmMigrations,
  runCheckpointMigrations,
} from './migrations/checkpoint.migrations.js';
export type { MigrationLockPatience } from './migrations/checkpoint.migrations.js';
export type { OrphanedJob } from './ownership/checkpoint-orphans.js';
export type { CheckpointMigration } from './migrations/migration.interface.js';
export {
  CheckpointTelemetry,
  CHECKPOINT_INSTRUMENTATION,
} from './telemetry/checkpoint.telemetry.js';
export { CheckpointRetention, type PurgeResult } from './retention/checkpoint-retention.js';
