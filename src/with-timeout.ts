/**
 * Rejects with `message` after `ms` unless `promise` settles first. The promise itself goes on;
 * `abandon`, when given, cleans up after a value that arrives too late.
 */
export function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  message: string,
  abandon?: () => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      reject(new Error(message));
    }, ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        if (timedOut) abandon?.();
        else resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
