// Every message of the command line, in one place. What the library or the HTTP module already
// says (a refused control, nothing to redrive) is said with their words.
export const cliMessages = {
  usage: () =>
    `Usage: nestjs-checkpoint <command> [arguments] [--schema NAME] [--json]

Operates on the checkpoint tables at DATABASE_URL (schema: --schema, else CHECKPOINT_SCHEMA,
else "checkpoint"). Commands on runs also use the application's pg-boss there (its schema:
--boss-schema, else CHECKPOINT_BOSS_SCHEMA, else "pgboss").

Commands:
  list [--state S] [--limit N] [--after TOKEN]       keys, newest first
  list --runs [--state S] [--queue Q] [--limit N]    runs, newest first
  show <key> | --run <id>                             a key (and its failed items) or a run (and its chunks)
  pause <key> | --run <id>                            stop at the next batch boundary
  resume <key> | --run <id>                           lift a pause
  cancel <key> | --run <id>                           stop for good (a run's pg-boss jobs too)
  rewind <key> --to N --epoch E                       resume from item N (E: the epoch "show" printed)
  redrive <key> [--items 3,7] | --run <id>            run the failed-item ledger (or these items) again, once
  purge --older-than 30d [--state S]                  delete keys in S (default completed) not updated for that long
  migrate                                             apply the library's migrations

--json prints the result as JSON on stdout. Exit codes: 0 done, 1 refused (nothing changed),
2 bad arguments, 3 not found, 4 database unreachable or failed.`,
  unknownCommand: (name: string) =>
    `unknown command ${JSON.stringify(name)}: use list, show, pause, resume, cancel, rewind, redrive, purge or migrate (--help)`,
  optionNotFor: (option: string, command: string) =>
    `option --${option} is not an option of ${command} (--help lists each command's options)`,
  noArgument: (command: string) => `${command} takes no key: give options only (--help)`,
  keyOrRun: (command: string) => `${command} needs one key, or --run <id> (not both)`,
  oneKey: (command: string) => `${command} needs one key`,
  rewindNeeds: () =>
    'rewind needs --to <item> and --epoch <epoch> (the epoch "nestjs-checkpoint show <key>" printed)',
  purgeNeeds: () => 'purge needs --older-than <age>, such as 30d, 12h, 15m or 45s',
  notANumber: (option: string, value: string) =>
    `--${option} must be a whole number (got ${JSON.stringify(value)})`,
  itemsOfKey: () => "--items names items of one key's ledger: give a key, not --run",
  badItems: (value: string) =>
    `--items must be item indexes separated by commas, such as 3,7,12 (got ${JSON.stringify(value)})`,
  badAge: (value: string) =>
    `--older-than must be a number and a unit d, h, m or s, such as 30d (got ${JSON.stringify(value)})`,
  noDatabaseUrl: () =>
    'DATABASE_URL is not set: export the PostgreSQL URL of the application (postgres://user@host:port/db)',
  unreachable: (reason: string) => `the database at DATABASE_URL is unreachable: ${reason}`,
  badBossSchema: (value: string) =>
    `--boss-schema must be a pg-boss schema name: a letter or _, then letters, digits or _ (got ${JSON.stringify(value)})`,
  noBoss: (schema: string, reason: string) =>
    `commands on runs need the application's pg-boss, and schema "${schema}" has none (${reason}): name its schema with --boss-schema`,
  noTables: (schema: string) =>
    `schema "${schema}" has no checkpoint tables: run "nestjs-checkpoint migrate", or name the schema with --schema`,
  controlled: (action: string, what: string) => `${action}: ${what}`,
  rewound: (key: string, to: number, epoch: number) =>
    `rewound ${JSON.stringify(key)} to item ${to}; its epoch is now ${epoch}`,
  redriven: (items: number, keys: number, sent: number) =>
    `redrive asked for ${items} failed item(s) in ${keys} key(s): ` +
    (sent > 0
      ? `${sent} settled job(s) sent again to run them`
      : "each runs at its key's next attempt (its job is waiting, retrying or active, or the key is called directly)"),
  purged: (keys: number) => `purged ${keys} key(s)`,
  migrated: (versions: number[]) =>
    versions.length === 0
      ? 'the schema is up to date: no migration to apply'
      : `applied migration(s) ${versions.join(', ')}`,
};
