// Messages of the failing-items room, each saying what to fix.

export const itemMessages = {
  skipLimit: (key: string, allowed: string, skipped: number, index: number, cause: string) =>
    `checkpointed work on key "${key}" reached its skip limit (${allowed}; ${skipped} already in the ledger) at item ${index}: ${cause}. ` +
    `Progress and the ledger are kept: fix the items or raise skip.limit, and the next attempt resumes at item ${index}`,
  redriveOutOfRange: (key: string, index: number, length: number) =>
    `redrive of key "${key}": the ledger holds item ${index}, but batches() got only ${length} items; pass the same input as the run that skipped it`,
  redriveNeedsBoss: (key: string, queue: string) =>
    `redrive of key "${key}": its job of queue "${queue}" must be sent again, and this CheckpointModule has no pg-boss: give it the boss option`,
  redriveJobGone: (key: string, queue: string, jobId: string) =>
    `redrive of key "${key}": its pg-boss job ${jobId} is no longer in queue "${queue}" (deleted after its retention), so there is nothing to send again; send a job with that id and the same data to "${queue}", then redrive`,
  redriveJobActive: (key: string, jobId: string) =>
    `redrive of key "${key}": the key completed but its pg-boss job ${jobId} is still active (in plain mode the worker completes the job just after the key); redrive again in a moment`,
  redriveNotSent: (key: string, jobId: string) =>
    `redrive of key "${key}": pg-boss did not take job ${jobId} back (a singleton or queue policy refused it); nothing was marked`,
} as const;
