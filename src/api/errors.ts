// Errors of the contract layer: a value that does not match its schema. The message names every
// problem by field (`spec.update.maxFailureRatio must be <= 1`); `problems` lists them one by one.

export type ApiErrorCode = "ERR_INVALID";

export class SchemaError extends Error {
  readonly code: ApiErrorCode = "ERR_INVALID";

  constructor(
    message: string,
    readonly problems: readonly string[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "SchemaError";
  }
}
