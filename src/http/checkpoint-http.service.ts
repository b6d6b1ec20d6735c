import {
  ConflictException,
  Inject,
  Injectable,
  NotFoundException,
  type OnModuleInit,
} from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { PgBoss } from 'pg-boss';
import { affected } from '../boss/checkpoint-hand-back.js';
import { CHECKPOINT_BOSS, CHECKPOINT_OPTIONS, CHECKPOINT_STATES } from '../checkpoint.constants.js';
import type { ControlAction } from '../checkpoint.interfaces.js';
import type { ResolvedCheckpointOptions } from '../checkpoint.options.js';
import { CheckpointRepository, type CheckpointRow } from '../checkpoint.repository.js';
import { CheckpointService } from '../checkpoint.service.js';
import { assertKey } from '../checkpoint.validation.js';
import type { FailedItem, RedriveRequest } from '../items/failed-item.interface.js';
import { FailedItemsService } from '../items/failed-items.service.js';
import { decodeCursor, TIME_AND_KEY, toPage } from '../page-cursor.js';
import type { Run } from '../runs/runs.interfaces.js';
import { CheckpointRuns } from '../runs/runs.service.js';
import { httpMessages } from './checkpoint-http.messages.js';
import {
  checkpointHttpSql,
  COUNT_CAP,
  type CheckpointHttpSql,
  type KeyFilter,
} from './checkpoint-http.sql.js';
import {
  toKeyView,
  toRunView,
  type KeyView,
  type Page,
  type ChunkCounts,
  type RunView,
  type StateCounts,
  type ThroughputView,
} from './checkpoint-http.views.js';

/** A change a live stream sends: a key's or a run's new view. */
export type LiveEvent = { type: 'key'; key: KeyView } | { type: 'run'; run: RunView };

/**
 * What the HTTP module reads and does. It finds the CheckpointModule's providers wherever the
 * application registered them (ModuleRef, not strict), so the module works without `isGlobal`.
 * Every value from a request is checked with the library's own rules before any statement.
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
    for (const value of [filter.runId, filter.queue, filter.search]) {
      if (value !== null) assertKey(value);
    }
    const position = after === null ? null : decodeCursor('keys', after, TIME_AND_KEY);
    const { rows } = await this.repository.run<CheckpointRow & { page_at: string }>(
      'list',
      undefined,
      this.sql.listKeys(filter, limit, position),
    );
    return toPage(rows, limit, (row) => [row.page_at, row.key], toKeyView);
  }

  /** Keys per state, each counted up to COUNT_CAP (an index range each, never a table scan). */
  async counts(): Promise<StateCounts> {
    const { rows } = await this.repository.run<{ state: string; count: number }>(
      'list',
      undefined,
      this.sql.counts(),
    );
    const counts: Record<string, number> = {};
    for (const state of Object.values(CHECKPOINT_STATES)) counts[state] = 0;
    for (const row of rows) counts[row.state] = row.count;
    return { counts, cap: COUNT_CAP };
  }

  async key(key: string): Promise<KeyView> {
    assertKey(key);
    const [view] = await this.keys([key]);
    if (view === undefined) throw new NotFoundException(httpMessages.noKey(key));
    return view;
  }

  /** A page of runs, newest first, as CheckpointRuns.list reads them (its state, its paging). */
  async listRuns(limit: number, after: string | null): Promise<Page<RunView>> {
    const page = await this.runsService.list({ limit, after: after ?? undefined });
    return { ...page, items: await this.runViews(page.items) };
  }

  /** The run as CheckpointRuns.get reads it, with its chunks per state (404 for no run). */
  async run(id: string): Promise<RunView> {
    assertKey(id);
    const run = await this.runsService.get(id);
    if (run === null) throw new NotFoundException(httpMessages.noRun(id));
    const [view] = await this.runViews([run]);
    if (view === undefined) throw new NotFoundException(httpMessages.noRun(id));
    return view;
  }

  /** The run's throughput in `slices` equal slices of its life (404 for an unknown run). */
  async throughput(id: string, slices: number): Promise<ThroughputView> {
    await this.run(id);
    const { rows } = await this.repository.run<{
      starts_at: Date;
      ends_at: Date;
      items_per_second: number;
    }>('list', undefined, this.sql.throughput(id, slices));
    const first = rows[0];
    const last = rows[rows.length - 1];
    return {
      from: first === undefined ? null : first.starts_at.toISOString(),
      to: last === undefined ? null : last.ends_at.toISOString(),
      points: rows.map((row) => ({
        at: row.starts_at.toISOString(),
        itemsPerSecond: Math.round(row.items_per_second * 100) / 100,
      })),
    };
  }

  /** Pauses, resumes or cancels a run (CheckpointRuns.control); how many chunks took it. */
  controlRun(id: string, action: ControlAction): Promise<number> {
    return this.runsService.control(id, action);
  }

  /** A page of the failed-item ledger of a key or of a run's chunks, in item order. */
  failedItems(
    target: { key: string } | { runId: string },
    limit: number,
    after?: string,
  ): Promise<Page<FailedItem>> {
    return this.ledger.list({ ...target, limit, after });
  }

  /**
   * The key's ledger items run again, once each (FailedItemsService.redrive): all of them, or the
   * `items` named. Its settled pg-boss job is sent again in the same transaction.
   */
  async redriveKey(key: string, items: number[] | undefined): Promise<RedriveRequest> {
    const view = await this.key(key);
    const request = await this.ledger.redrive(key, items === undefined ? {} : { items });
    if (request.items === 0) {
      if (view.state === CHECKPOINT_STATES.running) {
        throw new ConflictException(httpMessages.redriveRunning(key));
      }
      if (items !== undefined) throw new NotFoundException(httpMessages.notInLedger(key, items));
      throw new ConflictException(
        httpMessages.nothingToRedrive(`checkpoint key ${JSON.stringify(key)}`),
      );
    }
    return request;
  }

  /** Every chunk's ledger of the run runs again (FailedItemsService.redriveRun). */
  async redriveRun(id: string): Promise<RedriveRequest> {
    await this.run(id);
    const request = await this.ledger.redriveRun(id);
    if (request.items === 0) {
      throw new ConflictException(httpMessages.nothingToRedrive(`run ${JSON.stringify(id)}`));
    }
    return request;
  }

  /**
   * A failed pg-boss key's job goes back to its queue (pg-boss `retry`, which raises the job's
   * retry limit by one): the next attempt resumes after the last committed batch.
   */
  async retry(key: string): Promise<void> {
    const view = await this.key(key);
    if (view.state !== CHECKPOINT_STATES.failed) {
      throw new ConflictException(httpMessages.nothingToRetry(key, view.state));
    }
    const boss = this.boss();
    if (view.queue === null || view.jobId === null || boss === null) {
      throw new ConflictException(httpMessages.notAJob(key));
    }
    const answer = await boss.retry(view.queue, view.jobId);
    if (affected(answer) === 0) {
      const job = await boss.getJobById(view.queue, view.jobId);
      throw new ConflictException(
        `the pg-boss job of ${JSON.stringify(key)} is ${job === null ? 'gone' : job.state}, not failed: nothing to retry`,
      );
    }
  }

  /** The views of the changed keys and of the runs they belong to, for the live feed. */
  async changed(keys: string[]): Promise<LiveEvent[]> {
    const events: LiveEvent[] = (await this.keys(keys)).map((key) => ({ type: 'key', key }));
    const runIds = [
      ...new Set(
        events.flatMap((event) =>
          event.type === 'key' && event.key.runId !== null ? [event.key.runId] : [],
        ),
      ),
    ];
    if (runIds.length === 0) return events;
    for (const run of await this.runs(runIds)) events.push({ type: 'run', run });
    return events;
  }

  private boss(): PgBoss | null {
    try {
      return this.moduleRef.get<PgBoss | null>(CHECKPOINT_BOSS, { strict: false });
    } catch {
      return null; // CheckpointModule without pg-boss
    }
  }

  private async keys(keys: string[]): Promise<KeyView[]> {
    const { rows } = await this.repository.run('list', undefined, this.sql.keys(keys));
    return rows.map(toKeyView);
  }

  /** The runs that exist among `ids`, each read by the library. */
  private async runs(ids: string[]): Promise<RunView[]> {
    const found = await Promise.all(ids.map((id) => this.runsService.get(id)));
    return this.runViews(found.filter((run): run is Run => run !== null));
  }

  /**
   * The library's runs with what the page adds: chunks per state, the highest attempt and the
   * running chunks' rate (one statement for all of them).
   */
  private async runViews(runs: Run[]): Promise<RunView[]> {
    if (runs.length === 0) return [];
    const { rows } = await this.repository.run<ChunkCounts>(
      'list',
      undefined,
      this.sql.chunkCounts(runs.map((run) => run.id)),
    );
    const byRun = new Map(rows.map((row) => [row.run_id, row]));
    return runs.map((run) => toRunView(run, byRun.get(run.id)));
  }
}
