import { Inject, Injectable, NotFoundException, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { bufferTime, concat, defer, filter, from, mergeMap, type Observable } from 'rxjs';
import { CHECKPOINT_OPTIONS } from '../checkpoint.constants.js';
import type { ResolvedCheckpointOptions } from '../checkpoint.options.js';
import { CheckpointRepository, type CheckpointRow } from '../checkpoint.repository.js';
import { CheckpointService } from '../checkpoint.service.js';
import type { FailedItem } from '../items/failed-item.interface.js';
import { FailedItemsService } from '../items/failed-items.service.js';
import { CheckpointRuns } from '../runs/runs.service.js';
import type { ControlAction } from '../checkpoint.interfaces.js';
import { decodeCursor, TIME_AND_KEY, toPage } from '../page-cursor.js';
import {
  checkpointHttpSql,
  type CheckpointHttpSql,
  type KeyFilter,
} from './checkpoint-http.sql.js';
import {
  toKeyView,
  toRunView,
  type KeyView,
  type Page,
  type RunRow,
  type RunView,
} from './checkpoint-http.views.js';

/** How long changes are gathered before a live view reads them (one query per window). */
const LIVE_WINDOW_MS = 150;

/** A change a live stream sends: a key's or a run's new view. */
export type LiveEvent = { type: 'key'; key: KeyView } | { type: 'run'; run: RunView };

/**
 * What the HTTP module reads and streams. It finds the CheckpointModule's providers wherever the
 * application registered them (ModuleRef, not strict), so the module works without `isGlobal`.
 */
@Injectable()
export class CheckpointHttpService implements OnModuleInit {
  private service!: CheckpointService;
  private repository!: CheckpointRepository;
  private sql!: CheckpointHttpSql;
  private ledger!: FailedItemsService;
  private runsService!: CheckpointRuns;

  constructor(@Inject(ModuleRef) private readonly moduleRef: ModuleRef) {}

  onModuleInit(): void {
    this.service = this.moduleRef.get(CheckpointService, { strict: false });
    this.repository = this.moduleRef.get(CheckpointRepository, { strict: false });
    this.ledger = this.moduleRef.get(FailedItemsService, { strict: false });
    this.runsService = this.moduleRef.get(CheckpointRuns, { strict: false });
    const options = this.moduleRef.get<ResolvedCheckpointOptions>(CHECKPOINT_OPTIONS, {
      strict: false,
    });
    this.sql = checkpointHttpSql(options.schema);
  }

  get checkpoints(): CheckpointService {
    return this.service;
  }

  async listKeys(filter: KeyFilter, limit: number, after: string | null): Promise<Page<KeyView>> {
    const position = after === null ? null : decodeCursor('keys', after, TIME_AND_KEY);
    const { rows } = await this.repository.run<CheckpointRow & { page_at: string }>(
      'list',
      undefined,
      this.sql.listKeys(filter, limit, position),
    );
    return toPage(rows, limit, (row) => [row.page_at, row.key], toKeyView);
  }

  async key(key: string): Promise<KeyView> {
    const [view] = await this.keys([key]);
    if (view === undefined) throw new NotFoundException(`no checkpoint key "${key}"`);
    return view;
  }

  async listRuns(limit: number, after: string | null): Promise<Page<RunView>> {
    const position = after === null ? null : decodeCursor('runs', after, TIME_AND_KEY);
    const { rows } = await this.repository.run<RunRow & { page_at: string }>(
      'list',
      undefined,
      this.sql.listRuns(limit, position),
    );
    return toPage(rows, limit, (row) => [row.page_at, row.run_id], toRunView);
  }

  async run(id: string): Promise<RunView> {
    const [view] = await this.runs([id]);
    if (view === undefined) throw new NotFoundException(`no run "${id}"`);
    return view;
  }

  /**
   * Pauses, resumes or cancels every chunk of a run; returns how many chunks took it. A run
   * started with CheckpointRuns is cancelled through it, so that its jobs are cancelled too.
   */
  async controlRun(id: string, action: ControlAction): Promise<number> {
    if (action === 'cancel' && (await this.runsService.get(id)) !== null) {
      const before = await this.run(id);
      await this.runsService.cancel(id);
      return before.chunks - before.counts.completed - before.counts.cancelled;
    }
    return this.service.controlRun(id, action);
  }

  /** A page of the failed-item ledger of a key or of a run's chunks, in item order. */
  failedItems(
    target: { key: string } | { runId: string },
    limit: number,
    after?: string,
  ): Promise<Page<FailedItem>> {
    return this.ledger.list({ ...target, limit, after });
  }

  /** Live views of every key and run that changes, in any process. */
  events(): Observable<LiveEvent> {
    return this.live(() => true, true);
  }

  /** The key's view now, then at every change. */
  keyEvents(key: string): Observable<LiveEvent> {
    return concat(
      defer(async () => ({ type: 'key' as const, key: await this.key(key) })),
      this.live((changed) => changed === key, false),
    );
  }

  /** The run's view now, then whenever one of its chunks changes. */
  runEvents(id: string): Observable<LiveEvent> {
    return concat(
      defer(async () => ({ type: 'run' as const, run: await this.run(id) })),
      this.live(() => true, true).pipe(
        filter((event) => event.type === 'run' && event.run.id === id),
      ),
    );
  }

  private live(accept: (key: string) => boolean, withRuns: boolean): Observable<LiveEvent> {
    return this.service.changes().pipe(
      filter(accept),
      bufferTime(LIVE_WINDOW_MS),
      filter((keys) => keys.length > 0),
      mergeMap((keys) => from(this.read([...new Set(keys)], withRuns)), 1),
      mergeMap((events) => from(events)),
    );
  }

  private async read(keys: string[], withRuns: boolean): Promise<LiveEvent[]> {
    const events: LiveEvent[] = (await this.keys(keys)).map((key) => ({ type: 'key', key }));
    if (!withRuns) return events;
    const { rows } = await this.repository.run<{ run_id: string }>(
      'list',
      undefined,
      this.sql.runsOfKeys(keys),
    );
    if (rows.length === 0) return events;
    for (const run of await this.runs(rows.map((row) => row.run_id))) {
      events.push({ type: 'run', run });
    }
    return events;
  }

  private async keys(keys: string[]): Promise<KeyView[]> {
    const { rows } = await this.repository.run('list', undefined, this.sql.keys(keys));
    return rows.map(toKeyView);
  }

  private async runs(ids: string[]): Promise<RunView[]> {
    const { rows } = await this.repository.run<RunRow>('list', undefined, this.sql.runs(ids));
    return rows.map(toRunView);
  }
}
