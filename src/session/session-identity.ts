/** The lease session's identity, and the timing it takes from the module options. */

/**
 * Who owns a lease: the backend pid and start time of the owning process's lease session; both
 * null where there is no lease session (a transaction pooler without a direct URL).
 */
export interface SessionIdentity {
  pid: number | null;
  /** The start as PostgreSQL prints it (text, so that it compares to the microsecond). */
  started: string | null;
}

export const NO_SESSION: SessionIdentity = Object.freeze({ pid: null, started: null });

/** Timing the session needs from the module options. */
export interface SessionTiming {
  leaseTtlMs: number;
  /** How long a lost session keeps trying to reconnect before its leases are given up. */
  reconnectForMs: number;
}
