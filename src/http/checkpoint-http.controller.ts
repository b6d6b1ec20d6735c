import {
  Body,
  ConflictException,
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
  ValidationPipe,
  type MessageEvent,
} from '@nestjs/common';
import { map, type Observable } from 'rxjs';
import { CHECKPOINT_STATES } from '../checkpoint.constants.js';
import type { ControlAction } from '../checkpoint.interfaces.js';
import { DASHBOARD_CSS } from './dashboard/dashboard.css.js';
import { dashboardHtml } from './dashboard/dashboard.html.js';
import { DASHBOARD_JS } from './dashboard/dashboard.js.js';
import type { FailedItem } from '../items/failed-item.interface.js';
import {
  FailedItemsQueryDto,
  KeyParams,
  ListKeysQuery,
  PageQuery,
  RewindBody,
  RunParams,
} from './checkpoint-http.dto.js';
import { CheckpointHttpExceptionFilter } from './checkpoint-http.filter.js';
import { CheckpointControlGuard } from './checkpoint-http.guard.js';
import { CheckpointHttpService, type LiveEvent } from './checkpoint-http.service.js';
import type { KeyView, Page, RunView } from './checkpoint-http.views.js';

/** Injection token of the HTTP module's resolved options. */
export const CHECKPOINT_HTTP_OPTIONS = Symbol('checkpoint:http-options');

/** What the dashboard needs to know about the module. */
export interface CheckpointHttpInfo {
  /** Whether control endpoints are on (a guard was given). */
  controls: boolean;
}

// Security headers of the dashboard's files: nothing but its own script and style may run.
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'self'; form-action 'none'; frame-ancestors 'none'";

const toMessage = (event: LiveEvent): MessageEvent => ({ type: event.type, data: event });

/**
 * The HTTP API and the dashboard. `CheckpointHttpModule.forRoot({ path })` mounts a subclass of
 * this controller at `path`: the page at `path/`, JSON under `path/api/`.
 */
@UseFilters(CheckpointHttpExceptionFilter)
@UsePipes(
  new ValidationPipe({
    transform: true,
    whitelist: true,
    forbidNonWhitelisted: true,
  }),
)
export class CheckpointHttpController {
  constructor(
    private readonly http: CheckpointHttpService,
    @Inject(CHECKPOINT_HTTP_OPTIONS) private readonly info: CheckpointHttpInfo,
  ) {}

  // --- the dashboard ----------------------------------------------------------------------------

  @Get()
  @Header('content-type', 'text/html; charset=utf-8')
  @Header('content-security-policy', CSP)
  @Header('x-content-type-options', 'nosniff')
  page(@Req() request: { originalUrl: string }): string {
    // Relative links then work under any mount point and global prefix, with or without a slash.
    const path = request.originalUrl.split('?')[0] ?? '/';
    return dashboardHtml(path.endsWith('/') ? path : `${path}/`);
  }

  @Get('dashboard.css')
  @Header('content-type', 'text/css; charset=utf-8')
  @Header('x-content-type-options', 'nosniff')
  css(): string {
    return DASHBOARD_CSS;
  }

  @Get('dashboard.js')
  @Header('content-type', 'text/javascript; charset=utf-8')
  @Header('x-content-type-options', 'nosniff')
  script(): string {
    return DASHBOARD_JS;
  }

  // --- reading ----------------------------------------------------------------------------------

  /** What this module offers: whether control endpoints are on. */
  @Get('api/info')
  about(): CheckpointHttpInfo {
    return this.info;
  }

  /** Keys, newest first; filters `state`, `runId`, `queue`, `search`; paged by `after`. */
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

  /** Server-sent events: the key's view now and at every change, from any process. */
  @Sse('api/keys/:key/events')
  keyEvents(@Param() params: KeyParams): Observable<MessageEvent> {
    return this.http.keyEvents(params.key).pipe(map(toMessage));
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

  @Get('api/runs/:id/failed-items')
  runFailedItems(
    @Param() params: RunParams,
    @Query() query: FailedItemsQueryDto,
  ): Promise<Page<FailedItem>> {
    return this.http.failedItems({ runId: params.id }, query.limit ?? 200, query.after);
  }

  @Sse('api/runs/:id/events')
  runEvents(@Param() params: RunParams): Observable<MessageEvent> {
    return this.http.runEvents(params.id).pipe(map(toMessage));
  }

  /** Server-sent events: every key and run that changes. */
  @Sse('api/events')
  events(): Observable<MessageEvent> {
    return this.http.events().pipe(map(toMessage));
  }

  // --- control (only behind the application's guard) ------------------------------------------

  @Post('api/keys/:key/pause')
  @HttpCode(200)
  @UseGuards(CheckpointControlGuard)
  pause(@Param() params: KeyParams): Promise<KeyView> {
    return this.controlKey(params.key, 'pause');
  }

  @Post('api/keys/:key/resume')
  @HttpCode(200)
  @UseGuards(CheckpointControlGuard)
  resume(@Param() params: KeyParams): Promise<KeyView> {
    return this.controlKey(params.key, 'resume');
  }

  @Post('api/keys/:key/cancel')
  @HttpCode(200)
  @UseGuards(CheckpointControlGuard)
  cancel(@Param() params: KeyParams): Promise<KeyView> {
    return this.controlKey(params.key, 'cancel');
  }

  /** Body `{ toIndex, expectedEpoch }`; 409 when the epoch moved or an attempt is running. */
  @Post('api/keys/:key/rewind')
  @HttpCode(200)
  @UseGuards(CheckpointControlGuard)
  async rewind(@Param() params: KeyParams, @Body() body: RewindBody): Promise<KeyView> {
    await this.http.key(params.key);
    await this.http.checkpoints.rewind(params.key, body.toIndex, {
      expectedEpoch: body.expectedEpoch,
    });
    return this.http.key(params.key);
  }

  @Post('api/runs/:id/pause')
  @HttpCode(200)
  @UseGuards(CheckpointControlGuard)
  pauseRun(@Param() params: RunParams): Promise<RunView> {
    return this.controlRun(params.id, 'pause');
  }

  @Post('api/runs/:id/resume')
  @HttpCode(200)
  @UseGuards(CheckpointControlGuard)
  resumeRun(@Param() params: RunParams): Promise<RunView> {
    return this.controlRun(params.id, 'resume');
  }

  @Post('api/runs/:id/cancel')
  @HttpCode(200)
  @UseGuards(CheckpointControlGuard)
  cancelRun(@Param() params: RunParams): Promise<RunView> {
    return this.controlRun(params.id, 'cancel');
  }

  private async controlKey(key: string, action: ControlAction): Promise<KeyView> {
    const before = await this.http.key(key);
    const service = this.http.checkpoints;
    const changed =
      action === 'pause'
        ? await service.pause(key)
        : action === 'resume'
          ? await service.resume(key)
          : await service.cancel(key);
    if (!changed) throw new ConflictException(refusal(action, before.state, before.control));
    return this.http.key(key);
  }

  private async controlRun(id: string, action: ControlAction): Promise<RunView> {
    const before = await this.http.run(id);
    if ((await this.http.controlRun(id, action)) === 0) {
      throw new ConflictException(refusal(action, before.state, null));
    }
    return this.http.run(id);
  }
}

function refusal(action: ControlAction, state: string, control: string | null): string {
  if (action === 'resume') return `nothing to resume: it is ${state} and not paused`;
  if (state === CHECKPOINT_STATES.completed || state === CHECKPOINT_STATES.cancelled)
    return `cannot ${action}: it is already ${state}`;
  return `cannot ${action}: it is ${state}${control === null ? '' : ` (${control} requested)`}`;
}
