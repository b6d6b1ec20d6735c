// One log line per batch that met failures, not one per failed try: a 10,000-item run with 1%
// bad items used to log a warning for every retry, replay and skipped item (383 of them). The
// batch loop notes what happened here and asks for the line when the batch (with its replay)
// is over. Pure bookkeeping; the caller logs.
import type { OpenBatch } from './item-recovery.js';

/** Items of a batch named one by one in its line; the rest are counted. */
const NAMED_ITEMS = 3;

interface BatchRecord {
  startIndex: number;
  count: number;
  redrive: boolean;
  retries: number;
  lastRetryCause: string;
  replayCause?: string;
  skipped: string[];
  keptInLedger: string[];
}

/** What one batch went through since it first failed, for its one line. */
export class BatchFailureLog {
  private current: BatchRecord | undefined;

  constructor(private readonly key: string) {}

  /** The batch (or one of its replayed items) failed and is retried in place. */
  retried(open: OpenBatch, cause: string): void {
    const record = this.recordOf(open);
    record.retries += 1;
    record.lastRetryCause = cause;
  }

  /** The batch is replayed one item at a time. */
  replayed(open: OpenBatch, cause: string): void {
    this.recordOf(open).replayCause = cause;
  }

  /** An item went to the failed-item ledger. */
  skipped(open: OpenBatch, cause: string): void {
    this.recordOf(open).skipped.push(`${open.startIndex} (${cause})`);
  }

  /** A redriven item failed again and stays in the ledger. */
  keptInLedger(open: OpenBatch, cause: string): void {
    this.recordOf(open).keptInLedger.push(`${open.startIndex} (${cause})`);
  }

  /**
   * The batch is over (its last item committed or skipped, or the attempt ended in it): the
   * line to log when it met failures, else undefined. `stopped` says how the attempt ended.
   */
  end(stopped?: string): string | undefined {
    const record = this.current;
    this.current = undefined;
    if (record === undefined) return undefined;
    const what = record.redrive
      ? `redriven item ${record.startIndex}`
      : `batch at item ${record.startIndex} (${record.count} items)`;
    const parts: string[] = [];
    if (record.retries > 0) {
      parts.push(
        `${record.retries} ${record.retries === 1 ? 'retry' : 'retries'} (last after ${record.lastRetryCause})`,
      );
    }
    if (record.replayCause !== undefined) {
      parts.push(`replayed one item at a time after ${record.replayCause}`);
    }
    if (record.skipped.length > 0) {
      parts.push(`${items(record.skipped)} to the failed-item ledger: ${named(record.skipped)}`);
    }
    if (record.keptInLedger.length > 0) {
      parts.push(`failed again, kept in the ledger: ${named(record.keptInLedger)}`);
    }
    const outcome = stopped ?? 'the work goes on';
    return `"${this.key}": ${what} met failures: ${parts.join('; ')}; ${outcome}`;
  }

  /** The record of the batch `open` belongs to; a batch-mode batch elsewhere starts a new one. */
  private recordOf(open: OpenBatch): BatchRecord {
    const current = this.current;
    const inside =
      current !== undefined &&
      open.startIndex >= current.startIndex &&
      open.startIndex < current.startIndex + current.count &&
      (open.mode !== 'batch' || open.startIndex === current.startIndex);
    if (inside) return current;
    const record: BatchRecord = {
      startIndex: open.startIndex,
      count: open.count,
      redrive: open.mode === 'redrive',
      retries: 0,
      lastRetryCause: '',
      skipped: [],
      keptInLedger: [],
    };
    this.current = record;
    return record;
  }
}

function items(list: readonly string[]): string {
  return list.length === 1 ? '1 item' : `${list.length} items`;
}

function named(list: readonly string[]): string {
  const shown = list.slice(0, NAMED_ITEMS).map((entry) => `item ${entry}`);
  const rest = list.length - shown.length;
  return rest > 0 ? `${shown.join(', ')} and ${rest} more` : shown.join(', ');
}
