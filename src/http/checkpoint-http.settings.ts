/** Injection token of the HTTP module's resolved settings. */
export const CHECKPOINT_HTTP_OPTIONS = Symbol('checkpoint:http-options');

/** What the controller needs of the options. */
export interface CheckpointHttpSettings {
  path: string;
  loginUrl: string | null;
  protected: boolean;
}
