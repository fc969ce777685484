/** Every failure peerfetch reports has one of these codes; tests assert the code, not the message. */
export type PeerfetchErrorCode =
  | 'manifest-invalid'
  | 'manifest-fetch-failed'
  | 'manifest-dir-missing'
  | 'range-invalid'
  | 'range-unsatisfiable'
  | 'codec-invalid'
  | 'bridge-invalid'
  | 'piece-hash-mismatch'
  | 'peer-timeout'
  | 'peer-closed'
  | 'tracker-unreachable'
  | 'tracker-refused'
  | 'origin-failed'
  | 'store-failed'
  | 'aborted'
  | 'option-invalid';

/**
 * The one error class of peerfetch.
 *
 * @example
 * throw new PeerfetchError('manifest-invalid', 'asset 3 has no pieces', { asset: 3 });
 */
export class PeerfetchError extends Error {
  readonly code: PeerfetchErrorCode;
  readonly details: Record<string, unknown>;

  constructor(code: PeerfetchErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'PeerfetchError';
    this.code = code;
    this.details = details;
  }
}

/** True when `error` is a PeerfetchError, optionally with the given code. */
export function isPeerfetchError(error: unknown, code?: PeerfetchErrorCode): error is PeerfetchError {
  return error instanceof PeerfetchError && (code === undefined || error.code === code);
}
