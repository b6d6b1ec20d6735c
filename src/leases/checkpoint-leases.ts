import { Logger } from '@nestjs/common';
import {
  CheckpointFencedError,
  CheckpointLeaseLapsedError,
  controlError,
} from '../checkpoint.errors.js';
import { messages } from '../checkpoint.messages.js';
import type { ResolvedCheckpointOptions } from '../checkpoint.options.js';
import type { CheckpointSession } from '../checkpoint.session.js';

/** An attempt's ownership of a key, as this process knows it. */
export interface Lease {
  key: string;
  epoch: number;
  dispatch: number | undefined;
  controller: AbortController;
  /** performance.now() when the lease was last known renewed (sent before the database set it). */
  confirmedAt: number;
}

/** A claim being made: the key is reserved before the first await, so a same-tick rival loses. */
export interface Reservation {
  dispatch: number | undefined;
}

/**
 * The leases this process holds, one per key it works on, and their renewal: one statement every
 * third of the TTL while it holds any. A lease not renewed for a whole TTL is given up.
 * @internal the ownership and control rooms share it
 */
export class CheckpointLeases {
  private readonly logger = new Logger('Checkpoint');
  private readonly leases = new Map<string, Lease>();
  /** Claims in flight, by key. */
  readonly reservations = new Map<string, Reservation>();
  private renewTimer?: NodeJS.Timeout;
  private renewing = false;
  private readonly shutdown = new AbortController();

  constructor(
    private readonly options: ResolvedCheckpointOptions,
    private readonly session: CheckpointSession,
  ) {
    // A replaced session re-asserts every lease at once, under its new identity.
    session.onRestore(() => void this.renew());
    // Reconnection gave up: the leases cannot be renewed any more.
    session.onLoss(() => this.lapse(Number.POSITIVE_INFINITY));
  }

  /** Fired when the application shuts down: in-flight work stops at its next batch boundary. */
  get shutdownSignal(): AbortSignal {
    return this.shutdown.signal;
  }

  /** The lease this process holds on `key`, if any. */
  get(key: string): Lease | undefined {
    return this.leases.get(key);
  }

  /** Records a new lease and makes sure renewal runs. */
  hold(lease: Lease): void {
    this.leases.set(lease.key, lease);
    this.scheduleRenewal();
  }

  /** Ends the lease on `key` when it is still the one of `epoch`. */
  end(key: string, epoch: number): void {
    const lease = this.leases.get(key);
    if (lease?.epoch === epoch) this.forget(lease);
  }

  forget(lease: Lease): void {
    if (this.leases.get(lease.key) === lease) this.leases.delete(lease.key);
  }

  /** Fires the shutdown signal: every attempt of this process stops at its next batch boundary. */
  stopAttempts(): void {
    this.shutdown.abort(new Error(messages.shuttingDown()));
  }

  /** Stops the attempts and the renewal timer. */
  stop(): void {
    this.stopAttempts();
    clearTimeout(this.renewTimer);
    this.renewTimer = undefined;
  }

  /** Renews every lease of this process every third of the TTL while it holds any. */
  private scheduleRenewal(): void {
    if (this.renewTimer !== undefined || this.shutdown.signal.aborted) return;
    this.renewTimer = setTimeout(
      () => {
        this.renewTimer = undefined;
        // Checked on every tick, even while a renewal hangs: a lease is given up on time.
        this.lapse(performance.now() - this.options.leaseTtlMs);
        if (this.leases.size > 0) this.scheduleRenewal();
        void this.renew();
      },
      Math.floor(this.options.leaseTtlMs / 3),
    ).unref();
  }

  /**
   * One statement renews (or, after a new session, re-asserts) every lease of the process. A
   * lease missing from the result was taken over: its attempt is fenced. A lease that has not
   * been renewed for a whole TTL is given up by its attempt (another may own the key by now).
   */
  private async renew(): Promise<void> {
    if (this.renewing || this.leases.size === 0) return;
    this.renewing = true;
    const leases = [...this.leases.values()];
    const sent = performance.now();
    const ttl = this.options.leaseTtlMs;
    // A renewal that hangs (a silent partition) must not hold the session forever.
    const hung = setTimeout(
      () => this.session.abandonConnection(`lease renewal got no answer within ${ttl} ms`),
      ttl,
    ).unref();
    try {
      const renewed = await this.session.renew(
        leases.map((lease) => lease.key),
        leases.map((lease) => lease.epoch),
      );
      for (const lease of leases) {
        if (renewed.has(lease.key)) {
          lease.confirmedAt = sent;
          // An operator's request that this process did not hear (see CheckpointSession).
          const control = renewed.get(lease.key) ?? null;
          if (control !== null) lease.controller.abort(controlError(lease.key, control));
        } else if (this.leases.get(lease.key) === lease) {
          lease.controller.abort(new CheckpointFencedError(lease.key, lease.epoch));
          this.forget(lease);
        }
      }
    } catch (error) {
      this.logger.warn(`could not renew leases: ${(error as Error).message}`);
    } finally {
      clearTimeout(hung);
      this.renewing = false;
    }
    this.lapse(performance.now() - ttl);
  }

  /** Gives up the leases last confirmed before `before` (performance.now() time). */
  private lapse(before: number): void {
    for (const lease of [...this.leases.values()]) {
      if (lease.confirmedAt >= before) continue;
      lease.controller.abort(
        new CheckpointLeaseLapsedError(
          lease.key,
          messages.leaseLapsed(lease.key, this.options.leaseTtlMs),
        ),
      );
      this.forget(lease);
    }
  }
}
