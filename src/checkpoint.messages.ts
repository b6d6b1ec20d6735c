// Every error message of the library, in one place, each saying what to fix.

export const messages = {
  migrationLocked: (version: number, waitedMs: number, blockers: string) =>
    `checkpoint migration ${version} could not lock its tables within ${waitedMs} ms (held by ${blockers}). Nothing was applied: start again when those transactions have ended, or stop the workers of the previous build first (docs/connections.md, Upgrading)`,
  migrationWaiting: (version: number, lockTimeoutMs: number, blockers: string, pauseMs: number) =>
    `checkpoint migration ${version} gave way after waiting ${lockTimeoutMs} ms for its table locks (held by ${blockers}); live workers go on, trying again in ${pauseMs} ms`,
  invalidOptions: (problems: string[]) =>
    `CheckpointModule options are invalid:\n  - ${problems.join('\n  - ')}`,
  invalidText: (field: string, value: unknown, max: number) =>
    `${field === 'key' ? 'checkpoint key' : field} must be a non-empty string of at most ${max} characters (got ${describe(value)})`,
  unstorableText: (field: string, problem: string) =>
    `${field === 'key' ? 'checkpoint key' : field} holds ${problem}, which PostgreSQL cannot store as is (a NUL is refused, a lone surrogate becomes U+FFFD): remove it, or encode the value (hex or base64, say)`,
  invalidEpoch: (value: unknown) =>
    `epoch must be the positive whole number that claim() returned (got ${describe(value)})`,
  invalidCount: (field: string, value: unknown) =>
    `${field} must be a whole number from 0 to Number.MAX_SAFE_INTEGER (got ${describe(value)})`,
  invalidState: (field: string, value: unknown, states: string[]) =>
    `${field} must be one of ${states.join(', ')} (got ${describe(value)})`,
  notAnObject: (field: string, value: unknown) =>
    `${field} must be an object (got ${describe(value)})`,
  invalidCursor: (list: string, token: unknown) =>
    `${list}: after must be the \`after\` token of a page this list returned (got ${describe(token)})`,
  offsetRefused: () =>
    'offset paging is gone (a deep offset reads every row before it): pass the `after` token of the previous page instead',
  invalidAge: (problem: string) => `purge: ${problem}; give a Date, or an age such as { days: 30 }`,
  indexOverTotal: (index: number, total: number) =>
    `currentIndex (${index}) cannot exceed totalItems (${total})`,
  resumeBeyondInput: (key: string, resumeFrom: number, items: number) =>
    `checkpoint key "${key}" resumes at item ${resumeFrom} but the input has only ${items} items: the input changed since the last attempt. ` +
    'Delete the checkpoint to start over, or leave the `fingerprint` option on so that a changed input is caught by onInputChange',
  processedOverTotal: (processed: number, total: number) =>
    `processedBatches (${processed}) cannot exceed totalBatches (${total})`,
  notSerializable: (field: string, reason: string) =>
    `${field} must be JSON-serialisable: ${reason}`,
  payloadTooLarge: (field: string, bytes: number, max: number) =>
    `${field} is ${bytes} bytes as JSON, over the limit of ${max} bytes (option maxPayloadBytes)`,
  storeFailed: (operation: string, key: string | undefined, cause: string) =>
    `checkpoint ${operation}${key === undefined ? '' : ` of key "${key}"`} failed in the database: ${cause}`,
  leaseConflict: (key: string) =>
    `checkpoint key "${key}" is owned by another live attempt; it can be claimed once that attempt ends, its process dies or its lease expires (option leaseTtlMs)`,
  leaseLapsed: (key: string, ttlMs: number) =>
    `the lease of checkpoint key "${key}" could not be renewed within ${ttlMs} ms (option leaseTtlMs): another attempt may take the key over`,
  notAManager: (operation: string, value: unknown) =>
    `${operation}: manager must be a TypeORM EntityManager (got ${describe(value)})`,
  managerReleased: () =>
    `the transaction of the manager given has ended (committed or rolled back, and its query runner released); call it inside the transaction`,
  managerConnectionLost: () =>
    `the connection of the manager given was lost: TypeORM released its query runner with the transaction still open`,
  dataSourceNotConnected: () =>
    'the DataSource has no connection pool: it is not initialized, or was destroyed',
  statementTimedOut: (ms: number) =>
    `the statement was cancelled after waiting ${ms} ms (option statementTimeoutMs); look for a lock held on the checkpoint table`,
  databaseUnavailable: (ms: number, reason: string) =>
    `the database stayed unreachable for ${ms} ms (option databaseOutageMs): ${reason}`,
  fenced: (key: string, epoch: number) =>
    `checkpoint key "${key}" was taken over by a newer attempt (this attempt held epoch ${epoch}); this attempt must stop, its uncommitted batch is discarded`,
  inputChanged: (key: string, stored: string, given: string) =>
    `the input of checkpoint key "${key}" changed since its last attempt (stored fingerprint ${stored}, now ${given}); ` +
    `delete the checkpoint, or set onInputChange to 'restart' (start over) or 'resume' (keep progress)`,
  noKey: (where: string) =>
    `@Checkpointed() on ${where} cannot derive a checkpoint key: give a \`key\` option (a function of the method's arguments), or a \`queue\` so that the pg-boss job id is the key`,
  keyFunctionFailed: (where: string, reason: string) =>
    `the key function of @Checkpointed() on ${where} did not return a usable key: ${reason}`,
  badDecoratorOptions: (where: string, problems: string[]) =>
    `@Checkpointed() on ${where} has invalid options:\n  - ${problems.join('\n  - ')}`,
  bossMissing: (where: string, queue: string) =>
    `@Checkpointed({ queue: '${queue}' }) on ${where} needs pg-boss: give CheckpointModule the \`boss\` option`,
  shuttingDown: () => 'the application is shutting down',
  paused: (key: string) =>
    `checkpoint key "${key}" is paused by an operator; resume it (CheckpointService.resume) to run it again`,
  cancelled: (key: string) =>
    `checkpoint key "${key}" was cancelled by an operator; it does not run again (delete it to start over)`,
  epochMoved: (key: string, expected: number, actual: number | null) =>
    actual === null
      ? `checkpoint key "${key}" does not exist; nothing was rewound`
      : `checkpoint key "${key}" is at epoch ${actual}, not the expected ${expected}: it ran or changed since you read it; read it again (find) and retry with its current epoch`,
  rewindPastProgress: (key: string, toIndex: number, current: number) =>
    `cannot rewind checkpoint key "${key}" to item ${toIndex}: it is only at item ${current} (rewind goes back, not forward)`,
  rewindRunning: (key: string) =>
    `checkpoint key "${key}" has a running attempt; pause it first (CheckpointService.pause), then rewind`,
  peerMissing: (entryPoint: string, packages: readonly string[], installCommand: string) =>
    `${entryPoint} needs ${packages.join(' and ')}, which ${packages.length === 1 ? 'is' : 'are'} not installed: ${installCommand}`,
} as const;

function describe(value: unknown): string {
  if (typeof value === 'string') {
    return value.length > 40 ? `a string of ${value.length} characters` : JSON.stringify(value);
  }
  if (typeof value === 'number' || typeof value === 'boolean' || value == null)
    return String(value);
  return typeof value;
}
