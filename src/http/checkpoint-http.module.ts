import {
  Controller,
  Module,
  type CanActivate,
  type DynamicModule,
  type Type,
} from '@nestjs/common';
import { CheckpointConfigError } from '../checkpoint.errors.js';
import {
  CHECKPOINT_HTTP_OPTIONS,
  CheckpointHttpController,
  type CheckpointHttpInfo,
} from './checkpoint-http.controller.js';
import { CheckpointControlGuard, CHECKPOINT_CONTROL_GUARD } from './checkpoint-http.guard.js';
import { CheckpointHttpService } from './checkpoint-http.service.js';

/** Options of `CheckpointHttpModule.forRoot()`. */
export interface CheckpointHttpModuleOptions {
  /** Where to mount the dashboard and its API (default `checkpoints`): `path/`, `path/api/...`. */
  path?: string;
  /**
   * The application's guard for the control endpoints (pause, resume, cancel, rewind), as a class
   * (built by Nest, in this module) or an instance. Without it they answer 403: read-only.
   */
  guard?: Type<CanActivate> | CanActivate;
}

const PATH_PATTERN = /^[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*$/;

/**
 * The opt-in HTTP API and dashboard of nestjs-checkpoint (needs an HTTP platform such as
 * `@nestjs/platform-express`, and CheckpointModule in the same application).
 */
@Module({})
export class CheckpointHttpModule {
  static forRoot(options: CheckpointHttpModuleOptions = {}): DynamicModule {
    const path = (options.path ?? 'checkpoints').replace(/^\/+|\/+$/g, '');
    if (!PATH_PATTERN.test(path)) {
      throw new CheckpointConfigError(
        `CheckpointHttpModule: path must be URL path segments of letters, digits, . _ ~ - (got ${JSON.stringify(options.path)})`,
      );
    }
    // A subclass per mount point: the route prefix is class metadata.
    @Controller(path)
    class MountedCheckpointController extends CheckpointHttpController {}

    const guard = options.guard;
    const info: CheckpointHttpInfo = { controls: guard !== undefined };
    return {
      module: CheckpointHttpModule,
      controllers: [MountedCheckpointController],
      providers: [
        CheckpointHttpService,
        CheckpointControlGuard,
        { provide: CHECKPOINT_HTTP_OPTIONS, useValue: info },
        guard === undefined
          ? { provide: CHECKPOINT_CONTROL_GUARD, useValue: null }
          : typeof guard === 'function'
            ? { provide: CHECKPOINT_CONTROL_GUARD, useClass: guard }
            : { provide: CHECKPOINT_CONTROL_GUARD, useValue: guard },
      ],
    };
  }
}
