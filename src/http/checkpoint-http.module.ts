import {
  Controller,
  Inject,
  Injectable,
  Logger,
  Module,
  type CanActivate,
  type DynamicModule,
  type OnApplicationBootstrap,
  type Provider,
  type Type,
} from '@nestjs/common';
import { CheckpointConfigError } from '../checkpoint.errors.js';
import { CheckpointHttpController } from './checkpoint-http.controller.js';
import {
  CHECKPOINT_HTTP_OPTIONS,
  type CheckpointHttpSettings,
} from './checkpoint-http.settings.js';
import {
  CheckpointAccessGuard,
  CHECKPOINT_CONTROL_GUARD,
  CHECKPOINT_READ_GUARD,
  CHECKPOINT_TRUSTED_ORIGINS,
} from './checkpoint-http.guard.js';
import { httpMessages } from './checkpoint-http.messages.js';
import { CheckpointHttpService } from './checkpoint-http.service.js';
import { CheckpointLiveFeed } from './checkpoint-http.live.js';

/** Options of `CheckpointHttpModule.forRoot()`. */
export interface CheckpointHttpModuleOptions {
  /** Where to mount the dashboard and its API (default `checkpoints`): `path/`, `path/api/...`. */
  path?: string;
  /**
   * The application's guard of **every** endpoint: reads, event streams and control (the page's
   * own HTML, CSS and script hold no data and are served to anyone, so that it can say "sign
   * in"). The browser's EventSource sends cookies but no headers: use the guard of a
   * cookie-based session (as `express-session` or a signed cookie give), not a bearer token.
   * A class (built by Nest in this module) or an instance. Without it, bootstrap logs a warning.
   */
  guard?: Type<CanActivate> | CanActivate;
  /**
   * The permission to pause, resume, cancel, rewind, retry and redrive, checked after `guard`.
   * Without it the control endpoints answer 403 for everyone: the module is read-only.
   */
  controlGuard?: Type<CanActivate> | CanActivate;
  /**
   * Origins (`https://admin.example.com`) besides the request's own from which a browser may
   * send a state-changing request. Every other cross-site request is refused, whatever the
   * guards say.
   */
  trustedOrigins?: string[];
  /** Where the page sends an operator who is not signed in (a link; default none). */
  loginUrl?: string;
}

const PATH_PATTERN = /^[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*$/;

function guardProvider(
  token: symbol,
  guard: Type<CanActivate> | CanActivate | undefined,
): Provider {
  if (guard === undefined) return { provide: token, useValue: null };
  return typeof guard === 'function'
    ? { provide: token, useClass: guard }
    : { provide: token, useValue: guard };
}

/** Says at bootstrap, loudly, that a module without a guard shows everything to everyone. */
@Injectable()
class UnprotectedWarning implements OnApplicationBootstrap {
  constructor(@Inject(CHECKPOINT_HTTP_OPTIONS) private readonly settings: CheckpointHttpSettings) {}

  onApplicationBootstrap(): void {
    if (!this.settings.protected) {
      new Logger('CheckpointHttpModule').warn(httpMessages.unprotected(this.settings.path));
    }
  }
}

/**
 * The opt-in HTTP API and dashboard of nestjs-checkpoint (needs an HTTP platform such as
 * `@nestjs/platform-express`, and CheckpointModule in the same application).
 */
@Module({})
export class CheckpointHttpModule {
  /** The dashboard and its API under `options.path`, behind `options.guard` (see the options). */
  static forRoot(options: CheckpointHttpModuleOptions = {}): DynamicModule {
    const path = (options.path ?? 'checkpoints').replace(/^\/+|\/+$/g, '');
    if (!PATH_PATTERN.test(path)) {
      throw new CheckpointConfigError(
        `CheckpointHttpModule: path must be URL path segments of letters, digits, . _ ~ - (got ${JSON.stringify(options.path)})`,
      );
    }
    const trustedOrigins = (options.trustedOrigins ?? []).map((origin) => {
      let parsed: URL | undefined;
      try {
        parsed = new URL(origin);
      } catch {
        parsed = undefined;
      }
      if (parsed?.origin !== origin) {
        throw new CheckpointConfigError(
          `CheckpointHttpModule: trustedOrigins must be origins such as https://admin.example.com, no path (got ${JSON.stringify(origin)})`,
        );
      }
      return origin;
    });
    // A subclass per mount point: the route prefix is class metadata.
    @Controller(path)
    class MountedCheckpointController extends CheckpointHttpController {}

    const settings: CheckpointHttpSettings = {
      path,
      loginUrl: options.loginUrl ?? null,
      protected: options.guard !== undefined,
    };
    return {
      module: CheckpointHttpModule,
      controllers: [MountedCheckpointController],
      providers: [
        CheckpointHttpService,
        CheckpointLiveFeed,
        CheckpointAccessGuard,
        UnprotectedWarning,
        { provide: CHECKPOINT_HTTP_OPTIONS, useValue: settings },
        { provide: CHECKPOINT_TRUSTED_ORIGINS, useValue: trustedOrigins },
        guardProvider(CHECKPOINT_READ_GUARD, options.guard),
        guardProvider(CHECKPOINT_CONTROL_GUARD, options.controlGuard),
      ],
    };
  }
}
