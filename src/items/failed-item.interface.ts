/** One item in the failed-item ledger. */
export interface FailedItem {
  key: string;
  /** The item's position in the key's input. */
  itemIndex: number;
  /** What `skip.ledgerValue` returned for it (default: the item, as JSON), or null. */
  item: unknown;
  /** The error's `name` (most error classes leave it `Error`: read `errorClass`). */
  errorName: string;
  /**
   * The error's class (`constructor.name`), such as `RefusedError`; for a thrown value that is
   * no object, its type. Rows written by a build before this field hold `errorName` here.
   */
  errorClass: string;
  /** The error's `code` when it has one as a string or a number (`'ECONNRESET'`, `429`). */
  errorCode: string | number | null;
  errorMessage: string;
  /** The attempt that last saw it fail. */
  attempt: number;
  failedAt: Date;
}

/** What `redrive()` asked for. */
export interface RedriveRequest {
  /** The keys whose next attempt runs their ledger items first. */
  keys: string[];
  /** Ledger items those attempts will run. */
  items: number;
  /**
   * The keys whose pg-boss job had settled and was sent again, in the transaction that marked
   * their items (the others' jobs are waiting, retrying or active, or they have none).
   */
  sent: string[];
}

/** Options of `FailedItemsService.redrive()`. */
export interface RedriveOptions {
  /**
   * Only these items of the key's ledger (their `itemIndex`); default: every item in it.
   * Indexes not in the ledger are ignored.
   */
  items?: number[];
}

/** Filter of `FailedItemsService.list()`. */
export interface FailedItemsQuery {
  key?: string;
  runId?: string;
  /** At most this many rows (default 1000), in key and item order. */
  limit?: number;
  /** The `after` token of the previous page: this page starts after its last item. */
  after?: string;
}
