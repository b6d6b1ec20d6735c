// nestjs-checkpoint/testing: prove in an ordinary Nest test that a handler resumes.
export {
  CheckpointTestingModule,
  type CheckpointTestingOptions,
} from './checkpoint-testing.module.js';
export {
  CheckpointTesting,
  CheckpointNotResumableError,
  type DrainReport,
  type ResumableOptions,
  type ResumableReport,
} from './checkpoint-testing.service.js';
export type { FiredInterruption, Interruption } from './interruptions.js';
export type { InterruptionPhase } from '../attempt/attempt-interrupter.js';
export { testDatabase, type TestDatabase } from './test-database.js';
