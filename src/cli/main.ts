// The `shoal` command: parses the command line (program.ts), runs the command, and turns every
// failure into a message in Docker's words and an exit code — 0 for help and --version, 1 for
// everything else (entry.cts, the first module, sets it, and ends the command quietly when a
// reader closes the pipe early: `shoal service logs web | head`). `shoal nats-server` goes
// straight to the message server, without the command-line parser and the rest of the CLI (its
// flags are nats-server's, parsed there), so that a server at rest holds only what it uses:
// entry.cts runs the server's one-file bundle, and only when that is stale does it come here.

import type { Command } from "commander";
import { CliError, commandPath, UsageError } from "./errors.js";
import type { CommandFailure } from "./program.js";

/** `Usage:  shoal service ps [options] <service...>` and the description, as Docker adds them. */
function usageOf(cmd: Command): string {
  const desc = cmd.description();
  return `\nUsage:  ${commandPath(cmd)} ${cmd.usage()}${desc ? `\n\n${desc}` : ""}`;
}

function requires(cmd: Command): string {
  const args = cmd.registeredArguments;
  const required = args.filter((a) => a.required).length;
  const variadic = args.some((a) => a.variadic);
  const n = `${required} argument${required === 1 ? "" : "s"}`;
  return `"${commandPath(cmd)}" requires ${variadic ? "at least" : "exactly"} ${n}.`;
}

/** The message of a commander parse error, in Docker's (cobra's) words. */
export function parseErrorMessage(f: CommandFailure): string {
  const { error: e, command: cmd } = f;
  const see = `See '${commandPath(cmd)} --help'.`;
  const quoted = /'([^']*)'/.exec(e.message)?.[1] ?? "";
  switch (e.code) {
    case "commander.unknownOption": {
      const flag = quoted.split("=")[0]! || quoted;
      return flag.startsWith("--") || flag.length < 2
        ? `unknown flag: ${flag}\n${see}`
        : `unknown shorthand flag: '${flag.slice(1, 2)}' in ${flag}\n${see}`;
    }
    case "commander.optionMissingArgument": {
      const long = /--[\w-]+/.exec(quoted)?.[0] ?? quoted;
      return `flag needs an argument: ${long}\n${see}`;
    }
    case "commander.unknownCommand":
      return `unknown command "${quoted}" for "${commandPath(cmd)}"\n${see}`;
    case "commander.excessArguments":
      return cmd.registeredArguments.length === 0
        ? `"${commandPath(cmd)}" accepts no arguments.\n${see}\n${usageOf(cmd)}`
        : `${requires(cmd)}\n${see}\n${usageOf(cmd)}`;
    case "commander.missingArgument":
      return `${requires(cmd)}\n${see}\n${usageOf(cmd)}`;
    default:
      return `${e.message.replace(/^error: /, "")}\n${see}`;
  }
}

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === "nats-server") return natsServer(argv.slice(1));
  const [{ buildProgram, CommandFailure }, { ApiError, NoDaemonError }] = await Promise.all([
    import("./program.js"),
    import("./api-client.js"),
  ]);
  const { program, state } = buildProgram(argv);
  try {
    await program.parseAsync(argv, { from: "user" });
    return state.code;
  } catch (err) {
    if (err instanceof CommandFailure) {
      const e = err.error;
      if (
        e.code === "commander.helpDisplayed" ||
        e.code === "commander.version" ||
        e.code === "commander.help"
      ) {
        return e.exitCode;
      }
      process.stderr.write(parseErrorMessage(err) + "\n");
      return 1;
    }
    if (err instanceof UsageError) {
      const see = err.helpFor ? `\nSee '${err.helpFor} --help'.` : "";
      process.stderr.write(`${err.message}${see}\n`);
      return 1;
    }
    if (err instanceof ApiError || err instanceof NoDaemonError || err instanceof CliError) {
      process.stderr.write(`Error: ${err.message}\n`);
      return 1;
    }
    process.stderr.write(`Error: ${(err as Error).message ?? String(err)}\n`);
    return 1;
  }
}

/** `shoal nats-server [flags]`: the message server alone, its failures worded as the CLI's. */
async function natsServer(argv: string[]): Promise<number> {
  try {
    const { natsServerMain } = await import("../daemon/nats-server.js");
    return await natsServerMain(argv);
  } catch (err) {
    process.stderr.write(`Error: ${(err as Error).message ?? String(err)}\n`);
    return 1;
  }
}
