/** What a run of the call left: its result and the snapshot the test took. */
export interface Outcome {
  result: unknown;
  snapshot: unknown;
}

/** How two outcomes differ, in words; empty when they are the same. */
export interface OutcomeDiff {
  /** One line per difference of the result, then per item of the snapshot that differs. */
  lines: string[];
  /** The snapshot's items that differ (the value of the `by` field of their rows). */
  items: string[];
}

const SHOWN_ITEMS = 5;

/**
 * Compares two outcomes. Results and non-row snapshots are compared as canonical JSON (object
 * keys sorted). A snapshot that is a list of rows is grouped by item (the `by` field, or each
 * row's first field) and the groups compared as multisets, so that the order of the rows does not
 * matter but a row written twice does.
 */
export function diffOutcomes(clean: Outcome, interrupted: Outcome, by?: string): OutcomeDiff {
  const lines: string[] = [];
  const items: string[] = [];
  if (canonical(clean.result) !== canonical(interrupted.result)) {
    lines.push(
      `result: uninterrupted ${canonical(clean.result)}, interrupted ${canonical(interrupted.result)}`,
    );
  }
  const a = clean.snapshot;
  const b = interrupted.snapshot;
  if (!isRows(a) || !isRows(b)) {
    if (canonical(a) !== canonical(b)) {
      lines.push(`snapshot: uninterrupted ${canonical(a)}, interrupted ${canonical(b)}`);
    }
    return { lines, items };
  }
  const left = groupRows(a, by);
  const right = groupRows(b, by);
  for (const item of [...new Set([...left.keys(), ...right.keys()])].sort(byItem)) {
    const before = (left.get(item) ?? []).sort();
    const after = (right.get(item) ?? []).sort();
    if (before.join('\n') !== after.join('\n')) items.push(item);
  }
  if (items.length > 0) {
    const field = by ?? firstField(a[0] ?? b[0]);
    lines.push(
      `snapshot: ${items.length} item(s) differ (by ${field}): ${items.slice(0, 20).join(', ')}` +
        (items.length > 20 ? ', …' : ''),
    );
    for (const item of items.slice(0, SHOWN_ITEMS)) {
      const show = (rows: string[] | undefined) =>
        `${rows?.length ?? 0} row(s)${rows === undefined ? '' : ` ${rows.join(' ')}`}`;
      lines.push(
        `  ${field} ${item}: uninterrupted ${show(left.get(item))}; interrupted ${show(right.get(item))}`,
      );
    }
  }
  return { lines, items };
}

type Row = Record<string, unknown>;

function isRows(value: unknown): value is Row[] {
  return (
    Array.isArray(value) &&
    value.every((row) => typeof row === 'object' && row !== null && !Array.isArray(row))
  );
}

function firstField(row: Row | undefined): string {
  return row === undefined ? '(none)' : (Object.keys(row)[0] ?? '(none)');
}

function groupRows(rows: Row[], by: string | undefined): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const row of rows) {
    const item = String(row[by ?? firstField(row)]);
    groups.set(item, [...(groups.get(item) ?? []), canonical(row)]);
  }
  return groups;
}

/** Items that are numbers sort as numbers. */
function byItem(a: string, b: string): number {
  const x = Number(a);
  const y = Number(b);
  return Number.isFinite(x) && Number.isFinite(y) ? x - y : a.localeCompare(b);
}

/** JSON with object keys sorted: the same value built in another order reads the same. */
export function canonical(value: unknown): string {
  return (
    JSON.stringify(value, (_key, item: unknown) => {
      if (typeof item === 'bigint') return item.toString();
      if (item === null || typeof item !== 'object' || Array.isArray(item)) return item;
      return Object.fromEntries(
        Object.entries(item as Row).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)),
      );
    }) ?? 'undefined'
  );
}
