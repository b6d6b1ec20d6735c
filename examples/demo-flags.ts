// The demo's command line, checked before anything starts (no database, no server): a bad flag
// is one line on stderr and exit code 2, never a stack trace.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

/** The demo's options once every flag has been checked. */
export interface DemoFlags {
  items: number;
  chunks: number;
  workers: number;
  itemMs: number;
  crashAt: number | undefined;
  schema: string;
  fresh: boolean;
  /** Internal: this process is an extra worker spawned by the demo. */
  worker: boolean;
}

/** What the command line asks for: help, a run, or nothing (each problem one line). */
export type ParsedDemoFlags =
  { kind: 'help' } | { kind: 'run'; flags: DemoFlags } | { kind: 'invalid'; problems: string[] };

/** The help text; a plain file, so that `npm run demo -- --help` needs no compiled code. */
export function demoHelp(): string {
  return readFileSync(new URL('../../examples/demo-help.txt', import.meta.url), 'utf8');
}

/** Parses and checks the demo's flags; never throws. */
export function parseDemoFlags(args: string[]): ParsedDemoFlags {
  let values;
  try {
    ({ values } = parseArgs({
      args: joinNegativeValues(args),
      strict: true,
      allowPositionals: false,
      options: {
        items: { type: 'string', default: '20000' },
        chunks: { type: 'string', default: '4' },
        workers: { type: 'string', default: '1' },
        'item-ms': { type: 'string', default: '2' },
        'crash-at': { type: 'string' },
        schema: { type: 'string', default: 'demo' },
        fresh: { type: 'boolean', default: false },
        worker: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    // parseArgs says which option and why in its first sentence; its hint about `--` does not apply.
    const message = error instanceof Error ? error.message : String(error);
    return { kind: 'invalid', problems: [message.split('\n')[0] ?? message] };
  }
  if (values.help) return { kind: 'help' };
  const problems: string[] = [];
  const wholeNumber = (name: string, value: string): number => {
    const parsed = /^\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(parsed) || parsed < 1) {
      problems.push(`--${name} must be a whole number >= 1 (got ${JSON.stringify(value)})`);
    }
    return parsed;
  };
  const items = wholeNumber('items', values.items);
  const chunks = wholeNumber('chunks', values.chunks);
  const workers = wholeNumber('workers', values.workers);
  const itemMs = decimal(values['item-ms']);
  if (itemMs === undefined || itemMs < 0 || itemMs > 60_000) {
    problems.push(
      `--item-ms must be a number of milliseconds from 0 to 60000 (got ${JSON.stringify(values['item-ms'])})`,
    );
  }
  let crashAt: number | undefined;
  if (values['crash-at'] !== undefined) {
    crashAt = decimal(values['crash-at']);
    if (crashAt === undefined || crashAt <= 0 || crashAt >= 100) {
      problems.push(
        `--crash-at must be a percentage above 0 and below 100 (got ${JSON.stringify(values['crash-at'])})`,
      );
    }
  }
  // The boss schema is `<schema>_boss`: keep both within PostgreSQL's identifier rules.
  if (!/^[a-z_][a-z0-9_]{0,47}$/.test(values.schema)) {
    problems.push(
      `--schema must be a lower-case identifier of at most 48 characters (got ${JSON.stringify(values.schema)})`,
    );
  }
  if (problems.length > 0) return { kind: 'invalid', problems };
  return {
    kind: 'run',
    flags: {
      items,
      chunks,
      workers,
      itemMs: itemMs ?? 0,
      crashAt,
      schema: values.schema,
      fresh: values.fresh,
      worker: values.worker,
    },
  };
}

/**
 * `--items -5` as `--items=-5`: parseArgs takes a value starting with a dash for an option and
 * calls it ambiguous; joined, the value reaches the checks below, which say what is wrong with it.
 */
function joinNegativeValues(args: string[]): string[] {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    const next = args[i + 1];
    if (VALUED.has(arg) && next !== undefined && /^-[\d.]/.test(next)) {
      joined.push(`${arg}=${next}`);
      i += 1;
    } else joined.push(arg);
  }
  return joined;
}

const VALUED = new Set(['--items', '--chunks', '--workers', '--item-ms', '--crash-at']);

/** A plain decimal number ("2", "0.5"), or undefined: Number() would also take "", "0x10", "1e3". */
function decimal(value: string): number | undefined {
  return /^\d+(\.\d+)?$/.test(value.trim()) ? Number(value) : undefined;
}
