import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import {
  bufferTime,
  catchError,
  defer,
  EMPTY,
  filter,
  from,
  mergeMap,
  Observable,
  share,
} from 'rxjs';
import { CheckpointService } from '../checkpoint.service.js';
import { CheckpointHttpService, type LiveEvent } from './checkpoint-http.service.js';

/** How long changes are gathered before the feed reads them (one read per window). */
const LIVE_WINDOW_MS = 150;

const logger = new Logger('CheckpointHttpModule');

/** What a stream sends: views that changed, and `ready` once no change can be missed any more. */
export type StreamEvent = LiveEvent | { type: 'ready' };

/**
 * The one live feed of a process: every key and run that changes, read once per window and
 * shared by every event stream of the module (all keys, one key, one run), however many clients
 * watch. It subscribes to the library's changes when the first client connects and lets go when
 * the last one leaves; 100 open dashboards cost the database what one does.
 *
 * Listening starts with that subscription and takes a round trip. A stream therefore sends what
 * its client should read only once the feed listens: a change committed in between would
 * otherwise be neither in the view nor in the feed, and the stream would show it never.
 */
@Injectable()
export class CheckpointLiveFeed implements OnModuleInit {
  private feed!: Observable<LiveEvent>;
  /** Resolves once the feed's current subscription listens. */
  private listening: Promise<void> = Promise.resolve();

  constructor(
    private readonly moduleRef: ModuleRef,
    private readonly http: CheckpointHttpService,
  ) {}

  onModuleInit(): void {
    const service = this.moduleRef.get(CheckpointService, { strict: false });
    const changes = defer(() => {
      let listening!: () => void;
      this.listening = new Promise((resolve) => (listening = resolve));
      return service.changes(listening);
    });
    this.feed = changes.pipe(
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

  /**
   * Every change, after `ready` once the feed listens: what the client read before `ready`, it
   * reads again.
   */
  all(): Observable<StreamEvent> {
    return this.following(
      () => true,
      () => Promise.resolve({ type: 'ready' }),
    );
  }

  /** The key's view once the feed listens, then its changes. */
  key(key: string): Observable<StreamEvent> {
    return this.following(
      (event) => event.type === 'key' && event.key.key === key,
      async () => ({ type: 'key', key: await this.http.key(key) }),
    );
  }

  /** The run's view once the feed listens, then its changes. */
  run(id: string): Observable<StreamEvent> {
    return this.following(
      (event) => event.type === 'run' && event.run.id === id,
      async () => ({ type: 'run', run: await this.http.run(id) }),
    );
  }

  /**
   * `first()` once the feed listens, then the feed's events that `select` keeps. Events that come
   * while `first()` is read follow it: they may be older than it, never lost.
   */
  private following(
    select: (event: LiveEvent) => boolean,
    first: () => Promise<StreamEvent>,
  ): Observable<StreamEvent> {
    return new Observable<StreamEvent>((subscriber) => {
      const held: LiveEvent[] = [];
      let started = false;
      const subscription = this.feed.pipe(filter(select)).subscribe({
        next: (event) => (started ? subscriber.next(event) : held.push(event)),
        error: (error: unknown) => subscriber.error(error),
      });
      // A client gone before the feed listened needs no first read.
      this.listening
        .then(() => (subscriber.closed ? undefined : first()))
        .then(
          (event) => {
            if (event === undefined) return;
            subscriber.next(event);
            started = true;
            for (const waiting of held.splice(0)) subscriber.next(waiting);
          },
          (error: unknown) => subscriber.error(error),
        );
      return subscription;
    });
  }
}
