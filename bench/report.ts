// The shape every scenario reports in, and how it becomes markdown and JSON. Scenarios format
// their own table cells (their columns differ) with the helpers below, so that every figure
// in the tables is written the same way.
import type { Summary } from './harness.js';

/** Anything JSON.stringify writes faithfully. */
export type Json =
  null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json };

/** A goal from the issue, checked against this run's figures. */
export interface Target {
  /** What is compared, with the figures, e.g. "advance / bare UPDATE at 2 MB = 1.08x (≤ 1.3x)". */
  text: string;
  holds: boolean;
}

/** One numbered benchmark: its table as printed, its targets, and the figures behind them. */
export interface Section {
  id: string;
  title: string;
  /** What was measured and how, in a sentence or two (printed above the table). */
  about: string;
  columns: string[];
  rows: string[][];
  targets: Target[];
  /** Explanations of the figures, printed under the targets. */
  notes: string[];
  /** The raw figures (samples, counts) the table was computed from. */
  raw: { readonly [key: string]: Json };
}

/** Milliseconds with three significant digits (0.512 ms, 7.13 ms, 63.2 ms). */
export function ms(value: number): string {
  if (value >= 100) return `${value.toFixed(0)} ms`;
  if (value >= 10) return `${value.toFixed(1)} ms`;
  if (value >= 1) return `${value.toFixed(2)} ms`;
  if (value >= 0.01) return `${value.toFixed(3)} ms`;
  return `${(value * 1000).toFixed(2)} µs`;
}

/** A ratio as "1.08x" (or "170x" when large). */
export function ratio(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  return value >= 100 ? `${value.toFixed(0)}x` : `${value.toFixed(2)}x`;
}

/** A whole number with thousands separators. */
export function count(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

/** The cells every latency row ends with: n, p50, p99, and both against the floor. */
export function latencyCells(summary: Summary, floor: Summary): string[] {
  return [
    count(summary.n),
    ms(summary.p50),
    ms(summary.p99),
    ratio(summary.p50 / floor.p50),
    ratio(summary.p99 / floor.p99),
  ];
}

/** A target line: `text` is the comparison with its figures. */
export function target(text: string, holds: boolean): Target {
  return { text, holds };
}

/** The figures of a summary as JSON, rounded to the microsecond, with its samples when given. */
export function summaryJson(summary: Summary, samples?: readonly number[]): Json {
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return {
    n: summary.n,
    mean: round(summary.mean),
    min: round(summary.min),
    p50: round(summary.p50),
    p90: round(summary.p90),
    p99: round(summary.p99),
    max: round(summary.max),
    ...(samples === undefined ? {} : { samples: samples.map(round) }),
  };
}

/** A markdown table; every column but the first is right-aligned (they hold figures). */
export function markdownTable(columns: readonly string[], rows: readonly string[][]): string {
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  const rule = columns.map((_, i) => (i === 0 ? '---' : '---:'));
  return [line(columns), line(rule), ...rows.map(line)].join('\n');
}

/** A section as markdown: heading, what was measured, table, targets, notes. */
export function renderSection(section: Section): string {
  const parts = [
    `## ${section.id}. ${section.title}`,
    section.about,
    markdownTable(section.columns, section.rows),
  ];
  if (section.targets.length > 0) {
    parts.push(
      section.targets
        .map((each) => `- ${each.holds ? '**holds**' : '**MISSED**'}: ${each.text}`)
        .join('\n'),
    );
  }
  if (section.notes.length > 0) parts.push(section.notes.join('\n\n'));
  return parts.join('\n\n');
}

/** JSON indented for reading, with arrays of numbers (the samples) kept on one line each. */
export function jsonText(value: Json): string {
  const text = JSON.stringify(value, null, 1).replace(/\[[-0-9.e,\s]*\]/g, (array) =>
    array.replace(/\s+/g, ''),
  );
  return `${text}\n`;
}
