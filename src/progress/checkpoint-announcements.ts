import type { EntityManager, QueryRunner } from 'typeorm';
import type { CheckpointSession } from '../checkpoint.session.js';
import type { Announced } from '../session/pending-announcements.js';

/**
 * Announcements that a key changed (watchers in any process read it again). A write made inside
 * a transaction the library runs is announced after its commit, not before.
 * @internal the ownership and control rooms announce through it
 */
export class CheckpointAnnouncements {
  /** Announcements of writes made inside a transaction the library runs: sent after its commit. */
  private readonly deferred = new WeakMap<QueryRunner, Map<string, Announced>>();

  constructor(private readonly session: CheckpointSession) {}

  /** Whether `manager` is a transaction of the library's whose announcements wait for its commit. */
  isDeferring(manager: EntityManager | undefined): boolean {
    return manager?.queryRunner !== undefined && this.deferred.has(manager.queryRunner);
  }

  /**
   * Announces `key` now, or after the commit when `manager` is the library's own transaction.
   * `progress`: only the key's progress moved (an advance; see CheckpointSession.announce).
   */
  changed(key: string, manager: EntityManager | undefined, what: Announced = 'change'): void {
    const deferred =
      manager?.queryRunner === undefined ? undefined : this.deferred.get(manager.queryRunner);
    if (deferred === undefined) this.session.announce(key, what);
    else if (deferred.get(key) !== 'change') deferred.set(key, what);
  }

  /**
   * Sends the announcements of writes made in `runner`'s transaction, once it committed (a
   * watcher reading before the commit would see the old state and never look again).
   */
  defer(runner: QueryRunner): () => void {
    const keys = new Map<string, Announced>();
    this.deferred.set(runner, keys);
    return () => {
      this.deferred.delete(runner);
      for (const [key, what] of keys) this.session.announce(key, what);
    };
  }
}
