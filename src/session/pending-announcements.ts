/** What an advance or a change marks: the key's state or anything else, or its progress alone. */
export type Announced = 'change' | 'progress';

/** One flush's statement: its keys, the advanced keys, the operators' requests to record. */
export interface AnnouncementBatch {
  keys: string[];
  advanced: string[];
  controls: string[];
}

/**
 * How long advances alone are held back after a flush found no process watching. A process with
 * running keys would otherwise send a statement every 100 ms only to learn that nobody watches
 * (5,000 a second from 500 processes); now one a second. A watcher that arrives meanwhile hears
 * the held keys at the next look, at most this late: nothing is dropped until a look finds
 * nobody watching.
 */
export const QUIET_MS = 1_000;

/**
 * The keys a process has yet to announce, and whether to send them now. Changes (claims, ends,
 * operators' requests) always go at the next flush; advances alone wait while the last look
 * found nobody watching, unless this process watches itself. It keeps the flush's timer too.
 */
export class PendingAnnouncements {
  private readonly changed = new Set<string>();
  private readonly advanced = new Set<string>();
  private readonly controls: string[] = [];
  /** Until when advances alone wait: the last flush found nobody watching. */
  private quietUntil = 0;
  private timer?: NodeJS.Timeout;
  /** When the timer fires. */
  private timerAt = 0;

  /** `flush` is called by the timer: it takes what is pending (see take). */
  constructor(private readonly flush: () => void) {}

  /** Whether a flush is scheduled. */
  get scheduled(): boolean {
    return this.timer !== undefined;
  }

  /** Makes the next flush come within `ms`: an earlier timer stays, a later one is moved. */
  flushWithin(ms: number): void {
    const at = Date.now() + ms;
    if (this.timer !== undefined && this.timerAt <= at) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(this.flush, ms).unref();
  }

  /** The flush is running: no timer is pending any more. */
  flushing(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  add(key: string, what: Announced): void {
    (what === 'progress' ? this.advanced : this.changed).add(key);
  }

  addControl(entry: string): void {
    this.controls.push(entry);
  }

  /**
   * The batch to send now and forget, or `{ waitMs }` when only advances are pending and the
   * quiet time has not run out (`watchingHere`: this process has subscribers, so it never
   * waits), or undefined when nothing is pending. `force` sends whatever is pending (close).
   */
  take(
    now: number,
    watchingHere: boolean,
    force = false,
  ): AnnouncementBatch | { waitMs: number } | undefined {
    if (this.changed.size === 0 && this.advanced.size === 0 && this.controls.length === 0) {
      return undefined;
    }
    const onlyAdvances = this.changed.size === 0 && this.controls.length === 0;
    if (onlyAdvances && !watchingHere && !force && now < this.quietUntil) {
      return { waitMs: this.quietUntil - now };
    }
    const batch = {
      keys: [...this.changed],
      advanced: [...this.advanced].filter((key) => !this.changed.has(key)),
      controls: this.controls.splice(0),
    };
    this.changed.clear();
    this.advanced.clear();
    return batch;
  }

  /** What the flush's statement found: whether some process watched. */
  looked(watched: boolean, now: number): void {
    this.quietUntil = watched ? 0 : now + QUIET_MS;
  }
}
