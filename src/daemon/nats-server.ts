// `shoal nats-server [flags]`: runs the message server in the foreground with nats-server's
// flags, logs and signals (SIGINT/SIGTERM stop, SIGUSR2 enters lame duck mode), or sends a
// signal to a running one with `--signal ldm|stop|quit|term|reopen|reload[=pid|pidfile]`.

import { readFileSync, readdirSync } from "node:fs";
import { parseFlags, USAGE } from "../nats/flags.js";
import { ServerLogger } from "../nats/log.js";
import { Server, NATS_VERSION } from "../nats/server.js";
import { SHOAL_VERSION } from "../lib/version.js";
import { OptionsError, ReloadError } from "../nats/errors.js";
import { reloadServer } from "../nats/reload.js";
import { fetchAccountJwt } from "../nats/resolver.js";
import { loadClientTls } from "../nats/tls.js";

const SIGNALS: Record<string, NodeJS.Signals> = {
  ldm: "SIGUSR2",
  stop: "SIGKILL",
  quit: "SIGINT",
  term: "SIGTERM",
  reopen: "SIGUSR1",
  reload: "SIGHUP",
};

/**
 * The command as `shoal` runs it (src/cli/entry.cts, main.ts): a failure the command does not
 * word itself is `Error: MESSAGE` on stderr and exit code 1, as for the CLI's other commands.
 */
export async function natsServerMain(argv: string[]): Promise<number> {
  try {
    return await natsServerCommand(argv);
  } catch (err) {
    process.stderr.write(`Error: ${(err as Error).message ?? String(err)}\n`);
    return 1;
  }
}

export async function natsServerCommand(argv: string[]): Promise<number> {
  let flags;
  const warnings: string[] = [];
  try {
    flags = parseFlags(argv, (w) => warnings.push(w));
  } catch (err) {
    if (err instanceof OptionsError) {
      process.stderr.write(`shoal nats-server: ${err.message}\n${USAGE}`);
      return 1;
    }
    throw err;
  }
  if (flags.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (flags.version) {
    process.stdout.write(`nats-server: v${NATS_VERSION} (shoal ${SHOAL_VERSION})\n`);
    return 0;
  }
  if (flags.signal) return sendSignal(flags.signal);
  const opts = flags.options;
  if (flags.testConfig) {
    for (const w of warnings) process.stderr.write(`${opts.configFile}: ${w}\n`);
    // nats-server's words, on stderr as it writes them.
    process.stderr.write(`nats-server: configuration file ${opts.configFile} is valid\n`);
    return 0;
  }
  if (opts.operator?.resolver === "URL") {
    // As nats-server 2.9's NewURLAccResolver: the base URL itself must answer 200.
    try {
      const tls = opts.resolverTls ? loadClientTls(opts.resolverTls) : undefined;
      await fetchAccountJwt(opts.operator.resolverUrl, "", undefined, tls);
    } catch (err) {
      process.stderr.write(`nats-server: ${(err as Error).message}\n`);
      return 1;
    }
  }
  const log = new ServerLogger({
    debug: opts.debug,
    trace: opts.trace,
    logtime: opts.logtime,
    file: opts.logFile || undefined,
  });
  for (const w of warnings) log.warn(w);
  const server = new Server(opts, log);
  const stop = () => void server.shutdown();
  process.on("SIGINT", () => {
    log.debug('Trapped "interrupt" signal');
    stop();
  });
  process.on("SIGTERM", () => {
    log.debug('Trapped "terminated" signal');
    stop();
  });
  process.on("SIGUSR2", () => void server.enterLameDuckMode());
  process.on("SIGHUP", () => {
    log.debug('Trapped "hangup" signal');
    reload(argv, server, log);
  });
  try {
    await server.startServer();
  } catch (err) {
    log.fatal(`Error listening on port: ${(err as Error).message}`);
    await server.shutdown();
    return 1;
  }
  await server.done;
  return 0;
}

/**
 * Reads the configuration file and flags again and applies them (nats-server's Reload); a
 * failure is logged as nats-server logs it and leaves the running configuration as it was.
 */
function reload(argv: string[], server: Server, log: ServerLogger): void {
  try {
    const next = parseFlags(argv, (w) => log.warn(w), true).options;
    reloadServer(server, next, log);
  } catch (err) {
    if (!(err instanceof OptionsError) && !(err instanceof ReloadError)) throw err;
    log.error(`Failed to reload server configuration: ${err.message}`);
  }
}

/** `--signal name[=pid|pidfile]`, as nats-server: without a pid, the one running server. */
function sendSignal(spec: string): number {
  const [name, target] = spec.split("=", 2) as [string, string | undefined];
  const sig = SIGNALS[name.toLowerCase()];
  if (!sig) {
    process.stderr.write(`shoal nats-server: unknown signal "${name}"\n`);
    return 1;
  }
  let pids: number[];
  if (target) {
    pids = [/^\d+$/.test(target) ? Number(target) : Number(readFileSync(target, "utf8").trim())];
  } else {
    pids = findServers();
    if (pids.length === 0) {
      process.stderr.write("shoal nats-server: no nats-server processes running\n");
      return 1;
    }
    if (pids.length > 1) {
      process.stderr.write(
        `shoal nats-server: multiple nats-server processes running:\n${pids.join("\n")}\n`,
      );
      return 1;
    }
  }
  try {
    process.kill(pids[0]!, sig);
  } catch (err) {
    process.stderr.write(`shoal nats-server: ${(err as Error).message}\n`);
    return 1;
  }
  return 0;
}

function findServers(): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const args = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      const i = args.indexOf("nats-server");
      if (
        i > 0 &&
        args.slice(0, i).some((a) => a.includes("shoal")) &&
        !args.some((a) => /^--?(sl|signal)/.test(a))
      ) {
        found.push(Number(entry));
      }
    } catch {
      // the process went away
    }
  }
  return found;
}
