// The CLI's errors: each a class with a code. A UsageError is bad input on the command line; the
// CLI prints it with Docker's pointer to the command's help (`See 'shoal service ps --help'.`).

import type { Command } from "commander";

/** "shoal service ps": the command's name with its parents'. */
export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

export class CliError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class UsageError extends CliError {
  /** The command whose help the message points to ("shoal service ps"); set by the runner. */
  helpFor: string | undefined;

  constructor(message: string, helpFor?: string) {
    super("ERR_USAGE", message);
    this.helpFor = helpFor;
  }
}

/** The daemon could not be started or joined; nothing was left behind. */
export class StartError extends CliError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("ERR_START", message, options);
  }
}

/** A compose file that cannot be deployed: the message names the file, the path and the key. */
export class ComposeError extends CliError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("ERR_COMPOSE", message, options);
  }
}
