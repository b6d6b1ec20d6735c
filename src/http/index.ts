// nestjs-checkpoint/http: the opt-in HTTP API and dashboard.
import './http.peers.js';
export {
  CheckpointHttpModule,
  type CheckpointHttpModuleOptions,
} from './checkpoint-http.module.js';
export type { CheckpointHttpInfo } from './checkpoint-http.controller.js';
export type { KeyView, Page, RunView } from './checkpoint-http.views.js';
export type { LiveEvent } from './checkpoint-http.service.js';
