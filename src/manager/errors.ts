// Errors of the manager layer. The API maps codes to HTTP statuses; the CLI prints the message.

export type ManagerErrorCode =
  | "ERR_NOT_FOUND"
  | "ERR_NAME_IN_USE"
  | "ERR_PORT_IN_USE"
  | "ERR_CONFLICT"
  | "ERR_UNAUTHORIZED"
  | "ERR_FORBIDDEN"
  | "ERR_INVALID"
  | "ERR_UNSUPPORTED"
  | "ERR_TOKEN"
  | "ERR_RATE_LIMITED"
  /** Several managers: none leads now (too few managers or etcd members online). */
  | "ERR_NO_LEADER";

export class ManagerError extends Error {
  constructor(
    readonly code: ManagerErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "ManagerError";
  }
}

export function httpStatusOf(code: string): number {
  switch (code) {
    case "ERR_NOT_FOUND":
      return 404;
    case "ERR_NAME_IN_USE":
    case "ERR_PORT_IN_USE":
    case "ERR_CONFLICT":
      return 409;
    case "ERR_UNAUTHORIZED":
      return 401;
    case "ERR_TOKEN":
    case "ERR_FORBIDDEN":
      return 403;
    case "ERR_RATE_LIMITED":
      return 429;
    case "ERR_NO_LEADER":
    case "ERR_NOT_LEADER":
    case "ERR_UNAVAILABLE":
      return 503;
    case "ERR_INVALID":
    case "ERR_UNSUPPORTED":
      return 400;
    default:
      return 500;
  }
}
