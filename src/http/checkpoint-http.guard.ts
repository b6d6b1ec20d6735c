import {
  ForbiddenException,
  Inject,
  Injectable,
  SetMetadata,
  UnauthorizedException,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { isObservable, lastValueFrom } from 'rxjs';
import { httpMessages } from './checkpoint-http.messages.js';

/** Injection token of the application's guard of every endpoint (or null: unprotected). */
export const CHECKPOINT_READ_GUARD = Symbol('checkpoint:read-guard');
/** Injection token of the application's guard of the control endpoints (or null: control off). */
export const CHECKPOINT_CONTROL_GUARD = Symbol('checkpoint:control-guard');
/** Injection token of the origins, besides the request's own, that may send control requests. */
export const CHECKPOINT_TRUSTED_ORIGINS = Symbol('checkpoint:trusted-origins');

const ACCESS_METADATA = 'checkpoint:http-access';

/**
 * What an endpoint needs: `page` (the dashboard's own files, which hold no data), `read` (the
 * application's guard) or `control` (the guard and the control guard).
 */
export type CheckpointAccess = 'page' | 'read' | 'control';

/** Marks an endpoint with what it needs (metadata only; CheckpointAccessGuard reads it). */
export const Access = (access: CheckpointAccess) => SetMetadata(ACCESS_METADATA, access);

interface HttpRequest {
  method: string;
  headers: Record<string, string | string[] | undefined>;
  protocol?: string;
}
interface HttpResponse {
  setHeader(name: string, value: string): void;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Every request of the module passes here, in this order: API answers are marked
 * `Cache-Control: no-store` (errors included); a state-changing request from another site is
 * refused whatever the application's guards say (a guard that trusts a session cookie would
 * otherwise approve a forged cross-site POST); then the application's guard, and for control
 * endpoints its control guard.
 */
@Injectable()
export class CheckpointAccessGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    @Inject(CHECKPOINT_READ_GUARD) private readonly readGuard: CanActivate | null,
    @Inject(CHECKPOINT_CONTROL_GUARD) private readonly controlGuard: CanActivate | null,
    @Inject(CHECKPOINT_TRUSTED_ORIGINS) private readonly trustedOrigins: readonly string[],
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const access =
      this.reflector.get<CheckpointAccess | undefined>(ACCESS_METADATA, context.getHandler()) ??
      'read';
    const http = context.switchToHttp();
    const request = http.getRequest<HttpRequest>();
    if (access !== 'page') http.getResponse<HttpResponse>().setHeader('cache-control', 'no-store');
    if (!SAFE_METHODS.has(request.method.toUpperCase())) this.assertSameSite(request);
    if (access === 'page') return true;
    if (!(await this.allows(this.readGuard, context))) {
      throw new UnauthorizedException(httpMessages.accessRefused());
    }
    if (access === 'read') return true;
    if (this.controlGuard === null) throw new ForbiddenException(httpMessages.controlOff());
    if (!(await this.allows(this.controlGuard, context))) {
      throw new ForbiddenException(httpMessages.controlRefused());
    }
    return true;
  }

  /** Whether this request holds the control permission (for the page: show the buttons or not). */
  async mayControl(context: ExecutionContext): Promise<boolean> {
    if (this.controlGuard === null) return false;
    try {
      return await this.allows(this.controlGuard, context);
    } catch {
      return false; // a guard that refuses by throwing
    }
  }

  private async allows(guard: CanActivate | null, context: ExecutionContext): Promise<boolean> {
    if (guard === null) return true;
    const verdict = guard.canActivate(context);
    return isObservable(verdict) ? await lastValueFrom(verdict) : await verdict;
  }

  /**
   * Browsers say where a request comes from: `Sec-Fetch-Site` (every current browser) and
   * `Origin` (on every POST). A client that sends neither (curl, a script) is no browser that a
   * forged page could drive, and passes on to the guards.
   */
  private assertSameSite(request: HttpRequest): void {
    const site = header(request, 'sec-fetch-site');
    const origin = header(request, 'origin');
    if (origin !== undefined && this.trustedOrigins.includes(origin)) return;
    if (site !== undefined && site !== 'same-origin') {
      throw new ForbiddenException(httpMessages.crossSite(origin ?? site));
    }
    if (origin === undefined) return;
    let originHost: string | undefined;
    try {
      originHost = new URL(origin).host;
    } catch {
      originHost = undefined; // "null" (a sandboxed frame, a file) or garbage
    }
    // The Host the browser sent, or the one a reverse proxy says it received.
    const hosts = [header(request, 'host'), header(request, 'x-forwarded-host')];
    if (originHost === undefined || !hosts.includes(originHost)) {
      throw new ForbiddenException(httpMessages.crossSite(origin));
    }
  }
}

function header(request: HttpRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
