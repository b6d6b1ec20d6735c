import {
  ForbiddenException,
  Inject,
  Injectable,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import { lastValueFrom, isObservable } from 'rxjs';

/** Injection token of the application's guard for the control endpoints (or null: read-only). */
export const CHECKPOINT_CONTROL_GUARD = Symbol('checkpoint:control-guard');

/**
 * Guards the control endpoints with the guard the application gave `forRoot({ guard })`. Without
 * one, every control request answers 403: the module is read-only.
 */
@Injectable()
export class CheckpointControlGuard implements CanActivate {
  constructor(@Inject(CHECKPOINT_CONTROL_GUARD) private readonly guard: CanActivate | null) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (this.guard === null) {
      throw new ForbiddenException(
        'control endpoints are off: give CheckpointHttpModule.forRoot() a guard to turn them on',
      );
    }
    const verdict = this.guard.canActivate(context);
    const allowed = isObservable(verdict) ? await lastValueFrom(verdict) : await verdict;
    if (!allowed) throw new ForbiddenException('the control guard refused this request');
    return true;
  }
}
