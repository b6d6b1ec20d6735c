// nestjs-checkpoint/health: the Terminus health indicator (needs @nestjs/terminus).
import './health.peers.js';
export {
  CheckpointHealthIndicator,
  CheckpointHealthModule,
  type CheckpointHealthOptions,
  type StalledKey,
} from './checkpoint.health.js';
