import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import {
  bufferTime,
  catchError,
  EMPTY,
  filter,
  from,
  mergeMap,
  share,
  type Observable,
} from 'rxjs';
import { CheckpointService } from '../checkpoint.service.js';
import { CheckpointHttpService, type LiveEvent } from './checkpoint-http.service.js';

/** How long changes are gathered before the feed reads them (one read per window). */
const LIVE_WINDOW_MS = 150;

const logger = new Logger('CheckpointHttpModule');

/**
 * The one live feed of a process: every key and run that changes, read once per window and
 * shared by every event stream of the module (all keys, one key, one run), however many clients
 * watch. It subscribes to the library's changes when the first client connects and lets go when
 * the last one leaves; 100 open dashboards cost the database what one does.
 */
@Injectable()
export class CheckpointLiveFeed implements OnModuleInit {
  private feed!: Observable<LiveEvent>;

  constructor(
    private readonly moduleRef: ModuleRef,
    private readonly http: CheckpointHttpService,
  ) {}

  onModuleInit(): void {
    const service = this.moduleRef.get(CheckpointService, { strict: false });
    this.feed = service.changes().pipe(
      bufferTime(LIVE_WINDOW_MS),
      filter((keys) => keys.length > 0),
      mergeMap(
        (keys) =>
          from(this.http.changed([...new Set(keys)])).pipe(
            // One failed read loses one window, not every client's stream: the next change reads again.
            catchError((error: unknown) => {
              logger.warn(`live feed: a read failed: ${String(error)}`);
              return EMPTY;
            }),
          ),
        1,
      ),
      mergeMap((events) => from(events)),
      share(),
    );
  }

  /** Every change, for every subscriber, from one subscription to the database. */
  all(): Observable<LiveEvent> {
    return this.feed;
  }

  /** Changes of one key. */
  key(key: string): Observable<LiveEvent> {
    return this.feed.pipe(filter((event) => event.type === 'key' && event.key.key === key));
  }

  /** Changes of one run. */
  run(id: string): Observable<LiveEvent> {
    return this.feed.pipe(filter((event) => event.type === 'run' && event.run.id === id));
  }
}
