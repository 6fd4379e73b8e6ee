// Errors of the message server: the exact -ERR texts nats-server sends, and the error classes
// thrown inside the server. A ProtocolError carries the text to send (or null to close silently,
// as nats-server does for some malformed arguments) and the reason logged on close.

/** The texts nats-server 2.9 puts inside `-ERR '...'`. */
export const ErrText = {
  UnknownOp: "Unknown Protocol Operation",
  MaxControlLine: "maximum control line exceeded",
  MaxPayload: "Maximum Payload Violation",
  InvalidSubject: "Invalid Subject",
  InvalidPublishSubject: "Invalid Publish Subject",
  AuthViolation: "Authorization Violation",
  AuthTimeout: "Authentication Timeout",
  StaleConnection: "Stale Connection",
  SlowConsumer: "Slow Consumer",
  MaxConnections: "maximum connections exceeded",
  MaxSubscriptions: "maximum subscriptions exceeded",
  MaxAccountConnections: "maximum account active connections exceeded",
  AuthExpired: "User Authentication Expired",
  AccountAuthExpired: "Account Authentication Expired",
  SecureRequired: "Secure Connection - TLS Required",
  NoHeaders: "Headers Not Supported",
  BadClientProtocol: "invalid client protocol",
  NoRespondersRequiresHeaders: "no responders requires headers support",
} as const;

export function pubViolation(subject: string): string {
  return `Permissions Violation for Publish to "${subject}"`;
}

export function subViolation(subject: string, queue: string | null): string {
  return queue === null
    ? `Permissions Violation for Subscription to "${subject}"`
    : `Permissions Violation for Subscription to "${subject}" using queue "${queue}"`;
}

/** Why a connection was closed, in nats-server's words (shown in /connz and the debug log). */
export const CloseReason = {
  ClientClosed: "Client Closed",
  AuthTimeout: "Authentication Timeout",
  AuthViolation: "Authorization Violation",
  AuthExpired: "Authentication Expired",
  MaxAccountConnections: "Maximum Account Connections Exceeded",
  ParseError: "Protocol Violation",
  ProtocolViolation: "Protocol Violation",
  MaxPayload: "Maximum Message Payload Exceeded",
  MaxSubscriptions: "Maximum Subscriptions Exceeded",
  MaxControlLine: "Maximum Control Line Exceeded",
  MaxConnections: "Maximum Connections Exceeded",
  BadClientProtocol: "Bad Client Protocol Version",
  NoRespondersRequiresHeaders: "No Responders Requires Headers",
  SlowConsumerPendingBytes: "Slow Consumer (Pending Bytes)",
  SlowConsumerWriteDeadline: "Slow Consumer (Write Deadline)",
  StaleConnection: "Stale Connection",
  ServerShutdown: "Server Shutdown",
  ReadError: "Read Error",
  WriteError: "Write Error",
  DuplicateRoute: "Duplicate Route",
  ClusterNameConflict: "Cluster Name Conflict",
  LameDuck: "Lame Duck Mode",
  TLSHandshakeError: "TLS Handshake Failure",
} as const;
export type CloseReasonText = (typeof CloseReason)[keyof typeof CloseReason];

export class ProtocolError extends Error {
  readonly code = "ERR_NATS_PROTOCOL";
  /**
   * @param errText the text for `-ERR '...'`, or null to close without telling the client
   * @param detail what the log says
   */
  constructor(
    readonly errText: string | null,
    detail: string,
    readonly reason: CloseReasonText = CloseReason.ProtocolViolation,
  ) {
    super(detail);
    this.name = "ProtocolError";
  }
}

/** Bad options or flags: the message names the problem; the server does not start. */
export class OptionsError extends Error {
  readonly code = "ERR_NATS_OPTIONS";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "OptionsError";
  }
}

/** A configuration reload that changes an option which cannot change while running. */
export class ReloadError extends Error {
  readonly code = "ERR_NATS_RELOAD";
  constructor(message: string) {
    super(message);
    this.name = "ReloadError";
  }
}

/** A URL resolver could not get an account's JWT (the message has nats-server's words). */
export class AccountFetchError extends Error {
  readonly code = "ERR_NATS_ACCOUNT_FETCH";
  constructor(message: string) {
    super(message);
    this.name = "AccountFetchError";
  }
}
