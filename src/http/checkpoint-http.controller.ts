import {
  Body,
  ConflictException,
  createParamDecorator,
  Get,
  Header,
  HttpCode,
  Inject,
  Param,
  Post,
  Query,
  Req,
  Sse,
  UseFilters,
  UseGuards,
  UsePipes,
  type ExecutionContext,
  type MessageEvent,
} from '@nestjs/common';
import { map, Observable } from 'rxjs';
import type { ControlAction } from '../checkpoint.interfaces.js';
import type { FailedItem, RedriveRequest } from '../items/failed-item.interface.js';
import { DASHBOARD_CSS } from './dashboard/dashboard.css.js';
import { dashboardHtml } from './dashboard/dashboard.html.js';
import { DASHBOARD_JS } from './dashboard/dashboard.js.js';
import {
  FailedItemsQueryDto,
  KeyParams,
  ListKeysQuery,
  PageQuery,
  RedriveBody,
  RewindBody,
  RunParams,
  ThroughputQuery,
} from './checkpoint-http.dto.js';
import { CheckpointHttpExceptionFilter } from './checkpoint-http.filter.js';
import { Access, CheckpointAccessGuard } from './checkpoint-http.guard.js';
import { CheckpointLiveFeed, type StreamEvent } from './checkpoint-http.live.js';
import { httpMessages } from './checkpoint-http.messages.js';
import { CheckpointHttpPipe } from './checkpoint-http.pipe.js';
import { CheckpointHttpService } from './checkpoint-http.service.js';
import type {
  KeyView,
  Page,
  RunView,
  StateCounts,
  ThroughputView,
} from './checkpoint-http.views.js';
import {
  CHECKPOINT_HTTP_OPTIONS,
  type CheckpointHttpSettings,
} from './checkpoint-http.settings.js';

/** What the dashboard needs to know about the module and the operator who asks. */
export interface CheckpointHttpInfo {
  /** Whether this operator may control (the control guard approves this request). */
  controls: boolean;
  /** Where to sign in, when the application said. */
  loginUrl: string | null;
}

// Security headers of the dashboard's files: nothing but its own script and style may run.
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'self'; form-action 'none'; frame-ancestors 'none'";

/** The handler's own ExecutionContext, to ask the control guard about this request. */
const RequestContext = createParamDecorator((_: unknown, context: ExecutionContext) => context);

const toMessage = (event: StreamEvent): MessageEvent => ({ type: event.type, data: event });

/**
 * The HTTP API and the dashboard. `CheckpointHttpModule.forRoot({ path })` mounts a subclass of
 * this controller at `path`: the page at `path/`, JSON under `path/api/`. Every API endpoint sits
 * behind the application's guard; control endpoints behind its control guard too.
 */
@UseFilters(CheckpointHttpExceptionFilter)
@UseGuards(CheckpointAccessGuard)
@UsePipes(CheckpointHttpPipe)
export class CheckpointHttpController {
  constructor(
    private readonly http: CheckpointHttpService,
    private readonly live: CheckpointLiveFeed,
    private readonly access: CheckpointAccessGuard,
    @Inject(CHECKPOINT_HTTP_OPTIONS) private readonly settings: CheckpointHttpSettings,
  ) {}

  // --- the dashboard (no data in these: anyone may load them, to be told to sign in) -----------

  @Get()
  @Access('page')
  @Header('content-type', 'text/html; charset=utf-8')
  @Header('content-security-policy', CSP)
  @Header('x-content-type-options', 'nosniff')
  @Header('referrer-policy', 'same-origin')
  page(@Req() request: { originalUrl: string }): string {
    // Relative links then work under any mount point and global prefix, with or without a slash.
    const path = request.originalUrl.split('?')[0] ?? '/';
    return dashboardHtml(path.endsWith('/') ? path : `${path}/`, this.settings.loginUrl);
  }

  @Get('dashboard.css')
  @Access('page')
  @Header('content-type', 'text/css; charset=utf-8')
  @Header('x-content-type-options', 'nosniff')
  css(): string {
    return DASHBOARD_CSS;
  }

  @Get('dashboard.js')
  @Access('page')
  @Header('content-type', 'text/javascript; charset=utf-8')
  @Header('x-content-type-options', 'nosniff')
  script(): string {
    return DASHBOARD_JS;
  }

  // --- reading ----------------------------------------------------------------------------------

  /** Whether this operator may control, and where to sign in. */
  @Get('api/info')
  async about(@RequestContext() context: ExecutionContext): Promise<CheckpointHttpInfo> {
    return {
      controls: await this.access.mayControl(context),
      loginUrl: this.settings.loginUrl,
    };
  }

  /**
   * Keys, newest first; filters `state`, `runId`, `queue`, and `search` (a key containing it, or
   * the exact run id or pg-boss job id); paged by `after`.
   */
  @Get('api/keys')
  keys(@Query() query: ListKeysQuery): Promise<Page<KeyView>> {
    return this.http.listKeys(
      {
        state: query.state ?? null,
        runId: query.runId ?? null,
        queue: query.queue ?? null,
        search: query.search ?? null,
      },
      query.limit ?? 50,
      query.after ?? null,
    );
  }

  /** How many keys are in each state (counted up to a cap: `capped` says which passed it). */
  @Get('api/counts')
  counts(): Promise<StateCounts> {
    return this.http.counts();
  }

  @Get('api/keys/:key')
  key(@Param() params: KeyParams): Promise<KeyView> {
    return this.http.key(params.key);
  }

  /** The key's failed-item ledger (items a skip policy isolated, with their errors). */
  @Get('api/keys/:key/failed-items')
  keyFailedItems(
    @Param() params: KeyParams,
    @Query() query: FailedItemsQueryDto,
  ): Promise<Page<FailedItem>> {
    return this.http.failedItems({ key: params.key }, query.limit ?? 200, query.after);
  }

  /**
   * Server-sent events: the key's view, read once the live feed listens, then at every change,
   * from any process. 404 first.
   */
  @Sse('api/keys/:key/events')
  async keyEvents(@Param() params: KeyParams): Promise<Observable<MessageEvent>> {
    await this.http.key(params.key);
    return this.live.key(params.key).pipe(map(toMessage));
  }

  /** Runs (started with CheckpointRuns), newest first. */
  @Get('api/runs')
  runs(@Query() query: PageQuery): Promise<Page<RunView>> {
    return this.http.listRuns(query.limit ?? 50, query.after ?? null);
  }

  @Get('api/runs/:id')
  run(@Param() params: RunParams): Promise<RunView> {
    return this.http.run(params.id);
  }

  /** The run's chunks (its keys) with their state, progress, attempt and error. */
  @Get('api/runs/:id/chunks')
  async chunks(@Param() params: RunParams, @Query() query: PageQuery): Promise<Page<KeyView>> {
    await this.http.run(params.id);
    return this.http.listKeys(
      { state: null, runId: params.id, queue: null, search: null },
      query.limit ?? 50,
      query.after ?? null,
    );
  }

  /** The run's items per second over its life, in `slices` (2-200, default 60) equal slices. */
  @Get('api/runs/:id/throughput')
  throughput(@Param() params: RunParams, @Query() query: ThroughputQuery): Promise<ThroughputView> {
    return this.http.throughput(params.id, query.slices ?? 60);
  }

  @Get('api/runs/:id/failed-items')
  runFailedItems(
    @Param() params: RunParams,
    @Query() query: FailedItemsQueryDto,
  ): Promise<Page<FailedItem>> {
    return this.http.failedItems({ runId: params.id }, query.limit ?? 200, query.after);
  }

  @Sse('api/runs/:id/events')
  async runEvents(@Param() params: RunParams): Promise<Observable<MessageEvent>> {
    await this.http.run(params.id);
    return this.live.run(params.id).pipe(map(toMessage));
  }

  /**
   * Server-sent events: every key and run that changes, after a `ready` event once the live feed
   * listens; a client reads its lists again then (what changed before `ready` may be missed).
   */
  @Sse('api/events')
  events(): Observable<MessageEvent> {
    return this.live.all().pipe(map(toMessage));
  }

  // --- control (behind the application's control guard) ----------------------------------------

  @Post('api/keys/:key/pause')
  @HttpCode(200)
  @Access('control')
  pause(@Param() params: KeyParams): Promise<KeyView> {
    return this.controlKey(params.key, 'pause');
  }

  @Post('api/keys/:key/resume')
  @HttpCode(200)
  @Access('control')
  resume(@Param() params: KeyParams): Promise<KeyView> {
    return this.controlKey(params.key, 'resume');
  }

  @Post('api/keys/:key/cancel')
  @HttpCode(200)
  @Access('control')
  cancel(@Param() params: KeyParams): Promise<KeyView> {
    return this.controlKey(params.key, 'cancel');
  }

  /** Body `{ toIndex, expectedEpoch }`; 409 when the epoch moved or an attempt is running. */
  @Post('api/keys/:key/rewind')
  @HttpCode(200)
  @Access('control')
  async rewind(@Param() params: KeyParams, @Body() body: RewindBody): Promise<KeyView> {
    await this.http.key(params.key);
    await this.http.checkpoints.rewind(params.key, body.toIndex, {
      expectedEpoch: body.expectedEpoch,
    });
    return this.http.key(params.key);
  }

  /** A failed pg-boss key's job runs again (it resumes after its last committed batch). */
  @Post('api/keys/:key/retry')
  @HttpCode(200)
  @Access('control')
  async retry(@Param() params: KeyParams): Promise<KeyView> {
    await this.http.retry(params.key);
    return this.http.key(params.key);
  }

  /** The key's ledger items run again, once each; body `{ items?: number[] }` picks some. */
  @Post('api/keys/:key/redrive')
  @HttpCode(200)
  @Access('control')
  redriveKey(@Param() params: KeyParams, @Body() body: RedriveBody): Promise<RedriveRequest> {
    return this.http.redriveKey(params.key, body.items ?? undefined);
  }

  /** Every chunk's ledger items of the run run again, once each. */
  @Post('api/runs/:id/redrive')
  @HttpCode(200)
  @Access('control')
  redriveRun(@Param() params: RunParams): Promise<RedriveRequest> {
    return this.http.redriveRun(params.id);
  }

  @Post('api/runs/:id/pause')
  @HttpCode(200)
  @Access('control')
  pauseRun(@Param() params: RunParams): Promise<RunView> {
    return this.controlRun(params.id, 'pause');
  }

  @Post('api/runs/:id/resume')
  @HttpCode(200)
  @Access('control')
  resumeRun(@Param() params: RunParams): Promise<RunView> {
    return this.controlRun(params.id, 'resume');
  }

  @Post('api/runs/:id/cancel')
  @HttpCode(200)
  @Access('control')
  cancelRun(@Param() params: RunParams): Promise<RunView> {
    return this.controlRun(params.id, 'cancel');
  }

  private async controlKey(key: string, action: ControlAction): Promise<KeyView> {
    const before = await this.http.key(key);
    if (!(await this.http.checkpoints.control(key, action)))
      throw new ConflictException(httpMessages.refusal(action, before.state, before.control));
    return this.http.key(key);
  }

  private async controlRun(id: string, action: ControlAction): Promise<RunView> {
    const before = await this.http.run(id);
    if ((await this.http.controlRun(id, action)) === 0) {
      throw new ConflictException(httpMessages.refusal(action, before.state, null));
    }
    return this.http.run(id);
  }
}
