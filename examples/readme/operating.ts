import {
  Controller,
  Get,
  Injectable,
  Module,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { TypeOrmModule } from '@nestjs/typeorm';
import { CheckpointModule, CheckpointService } from 'nestjs-checkpoint';
import { CheckpointHealthIndicator, CheckpointHealthModule } from 'nestjs-checkpoint/health';
import { CheckpointHttpModule } from 'nestjs-checkpoint/http';

const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

interface SignedInRequest {
  /** What your sign-in put on the request (express-session, passport, a signed cookie...). */
  session?: { user?: { roles: string[] } };
}

/**
 * Who may see the dashboard, its API and its live streams: your own signed-in session. A cookie
 * session works for the page's EventSource too (it sends cookies, never headers).
 */
@Injectable()
export class SignedInGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<SignedInRequest>();
    return request.session?.user !== undefined;
  }
}

/** Who may also pause, resume, cancel, rewind, retry and redrive: operators. */
@Injectable()
export class OperatorGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<SignedInRequest>();
    return request.session?.user?.roles.includes('operator') ?? false;
  }
}

@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly checkpoint: CheckpointHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.checkpoint.isHealthy('checkpoint')]);
  }
}

@Module({
  imports: [
    TypeOrmModule.forRoot({ type: 'postgres', url }),
    CheckpointModule.forRoot({
      boss: { connectionString: url },
      // Completed and cancelled keys and runs go after 30 days, every night at 03:17.
      retention: { days: 30, cron: '17 3 * * *' },
    }),
    // The dashboard at /ops/checkpoints/, its JSON and event streams under /ops/checkpoints/api/,
    // all of it behind your sign-in; control only for operators.
    CheckpointHttpModule.forRoot({
      path: 'ops/checkpoints',
      guard: SignedInGuard,
      controlGuard: OperatorGuard,
      loginUrl: '/login',
    }),
    TerminusModule,
    CheckpointHealthModule.forRoot({ stallMs: 5 * 60_000 }),
  ],
  controllers: [HealthController],
})
export class OperatingModule {}

/** The same controls from code, in any process (an admin script, a CLI). */
export async function pauseAndRewind(checkpoints: CheckpointService, key: string): Promise<void> {
  await checkpoints.pause(key); // the running attempt stops at its next batch boundary
  const row = await checkpoints.find(key);
  if (row === null) return;
  // Refused (CheckpointEpochMovedError) if anything ran or changed the key since find().
  await checkpoints.rewind(key, 0, { expectedEpoch: row.epoch });
  await checkpoints.resume(key); // a paused pg-boss job goes back to the queue
}
