// Every message the HTTP module answers or logs, in one place, each saying what to do. The
// command line (src/cli) answers with the same texts.
import { CHECKPOINT_STATES } from '../checkpoint.constants.js';
import type { ControlAction } from '../checkpoint.interfaces.js';

export const httpMessages = {
  crossSite: (origin: string) =>
    `cross-site request refused: a state-changing request must come from this application's own pages (${origin}); list other origins in CheckpointHttpModule.forRoot({ trustedOrigins })`,
  controlOff: () =>
    'control endpoints are off: give CheckpointHttpModule.forRoot() a controlGuard that grants the permission to operators',
  controlRefused: () => 'this operator may read but not control: the controlGuard refused',
  accessRefused: () =>
    'not signed in, or not allowed to see checkpoints: the guard of CheckpointHttpModule refused',
  unprotected: (path: string) =>
    `CheckpointHttpModule at /${path} is mounted WITHOUT A GUARD: anyone who can reach this server can read every key, failed item (with its payload), owner and live stream. ` +
    'Give CheckpointHttpModule.forRoot({ guard }) the guard of your sign-in (a session cookie works for the page and its event streams)',
  bodyTooDeep: (max: number) =>
    `the request body nests deeper than ${max} levels; send a flat JSON object such as { "toIndex": 0, "expectedEpoch": 3 }`,
  internal: (reference: string) =>
    `internal error (reference ${reference}); the server's log has the cause`,
  storeFailed: (reference: string) =>
    `the checkpoint store is unavailable or failed (reference ${reference}); the server's log has the cause`,
  noKey: (key: string) => `no checkpoint key ${JSON.stringify(key)}`,
  noRun: (id: string) => `no run ${JSON.stringify(id)}`,
  nothingToRetry: (key: string, state: string) =>
    `checkpoint key ${JSON.stringify(key)} is ${state}: only a failed key can be retried`,
  notAJob: (key: string) =>
    `checkpoint key ${JSON.stringify(key)} is not a pg-boss job's key (no queue and job id): run its method again to retry it`,
  notInLedger: (key: string, items: number[]) =>
    `items ${items.join(', ')} are not in the failed-item ledger of ${JSON.stringify(key)}`,
  redriveRunning: (key: string) =>
    `checkpoint key ${JSON.stringify(key)} is running: redrive it when its attempt ends`,
  nothingToRedrive: (what: string) => `${what} has no failed items to redrive`,
  /** Why pause, resume or cancel changed nothing, from the state read before it. */
  refusal: (action: ControlAction, state: string, control: string | null) => {
    if (action === 'resume') return `nothing to resume: it is ${state} and not paused`;
    if (state === CHECKPOINT_STATES.completed || state === CHECKPOINT_STATES.cancelled)
      return `cannot ${action}: it is already ${state}`;
    return `cannot ${action}: it is ${state}${control === null ? '' : ` (${control} requested)`}`;
  },
};
