// nestjs-checkpoint/health: the Terminus health indicator (needs @nestjs/terminus).
export {
  CheckpointHealthIndicator,
  CheckpointHealthModule,
  type CheckpointHealthOptions,
  type StalledKey,
} from './checkpoint.health.js';
