// The error a manager's join endpoint answers with (its status and message).

/** The manager answered the join (or renewal) with an error; 503: try again soon (no leader
 * now, or the state is moving to etcd for a second manager). */
export class JoinRefusedError extends Error {
  readonly code = "ERR_JOIN_REFUSED";
  override readonly name = "JoinRefusedError";
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}
