// Errors of the Consul-compatible catalog: each carries the HTTP status and the plain-text body
// Consul answers with (`Missing key name`, `Value exceeds 524288 byte limit`...), and a code.

export type ConsulErrorCode =
  "ERR_CONSUL_BAD_REQUEST" | "ERR_CONSUL_NOT_FOUND" | "ERR_CONSUL_TOO_LARGE" | "ERR_CONSUL_LISTEN";

const STATUS: Record<ConsulErrorCode, number> = {
  ERR_CONSUL_BAD_REQUEST: 400,
  ERR_CONSUL_NOT_FOUND: 404,
  ERR_CONSUL_TOO_LARGE: 413,
  ERR_CONSUL_LISTEN: 500,
};

export class ConsulError extends Error {
  readonly status: number;

  constructor(
    readonly code: ConsulErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "ConsulError";
    this.status = STATUS[code];
  }
}
