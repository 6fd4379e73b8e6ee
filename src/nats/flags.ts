// Command-line flags of `shoal nats-server`, the same as nats-server's (Go's flag package:
// `-p 4222`, `--port 4222`, `-p=4222` and `--port=4222` are all accepted). Flags override the
// configuration file, as in nats-server.

import { OptionsError } from "./errors.js";
import { defaultTlsConfig } from "./tls.js";
import {
  defaultClusterOptions,
  defaultOptions,
  loadConfigFile,
  splitHostPort,
  validateOptions,
  type Options,
  type Warn,
} from "./options.js";

export interface ParsedFlags {
  options: Readonly<Options>;
  /** `--help`, `--version`, `-t` (test the config and exit), `--signal` are handled by the caller. */
  help: boolean;
  version: boolean;
  testConfig: boolean;
  signal: string;
}

type Setter = (o: Options, v: string) => void;

interface FlagDef {
  names: string[];
  /** Takes a value (else it is a boolean switch). */
  value: boolean;
  set: Setter;
}

function intFlag(name: string, v: string): number {
  if (!/^-?\d+$/.test(v))
    throw new OptionsError(`invalid value "${v}" for flag -${name}: not a number`);
  return Number(v);
}

function boolFlag(v: string): boolean {
  return v === "" || v === "true" || v === "1" || v === "t" || v === "T" || v === "TRUE";
}

function tls(o: Options) {
  o.tls ??= defaultTlsConfig();
  return o.tls;
}

function cluster(o: Options) {
  o.cluster ??= defaultClusterOptions();
  return o.cluster;
}

const FLAGS: FlagDef[] = [
  { names: ["a", "addr", "net"], value: true, set: (o, v) => (o.host = v) },
  { names: ["p", "port"], value: true, set: (o, v) => (o.port = intFlag("port", v)) },
  { names: ["n", "name", "server_name"], value: true, set: (o, v) => (o.serverName = v) },
  { names: ["P", "pid"], value: true, set: (o, v) => (o.pidFile = v) },
  { names: ["m", "http_port"], value: true, set: (o, v) => (o.httpPort = intFlag("http_port", v)) },
  {
    names: ["ms", "https_port"],
    value: true,
    set: (o, v) => (o.httpsPort = intFlag("https_port", v)),
  },
  { names: ["tls"], value: false, set: (o, v) => void (boolFlag(v) ? tls(o) : (o.tls = null)) },
  { names: ["tlscert"], value: true, set: (o, v) => (tls(o).certFile = v) },
  { names: ["tlskey"], value: true, set: (o, v) => (tls(o).keyFile = v) },
  { names: ["tlscacert"], value: true, set: (o, v) => (tls(o).caFile = v) },
  { names: ["tlsverify"], value: false, set: (o, v) => (tls(o).verify = boolFlag(v)) },
  { names: ["client_advertise"], value: true, set: (o, v) => (o.clientAdvertise = v) },
  { names: ["ports_file_dir"], value: true, set: (o, v) => (o.portsFileDir = v) },
  { names: ["l", "log"], value: true, set: (o, v) => (o.logFile = v) },
  { names: ["T", "logtime"], value: false, set: (o, v) => (o.logtime = boolFlag(v)) },
  { names: ["D", "debug"], value: false, set: (o, v) => (o.debug = boolFlag(v)) },
  { names: ["V", "trace"], value: false, set: (o, v) => (o.trace = boolFlag(v)) },
  { names: ["VV"], value: false, set: (o) => (o.trace = true) },
  {
    names: ["DV", "DVV"],
    value: false,
    set: (o) => {
      o.debug = true;
      o.trace = true;
    },
  },
  { names: ["user"], value: true, set: (o, v) => (o.username = v) },
  { names: ["pass"], value: true, set: (o, v) => (o.password = v) },
  { names: ["auth"], value: true, set: (o, v) => (o.authToken = v) },
  { names: ["routes"], value: true, set: (o, v) => (cluster(o).routes = splitList(v)) },
  {
    names: ["cluster", "cluster_listen"],
    value: true,
    set: (o, v) => {
      const c = cluster(o);
      const hp = splitHostPort(v, c.host);
      c.host = hp.host;
      if (hp.port !== -2) c.port = hp.port;
      const auth = /^[a-z]+:\/\/([^:@/]+)(?::([^@/]*))?@/i.exec(v);
      if (auth) {
        c.username = decodeURIComponent(auth[1]!);
        c.password = decodeURIComponent(auth[2] ?? "");
      }
    },
  },
  { names: ["cluster_name"], value: true, set: (o, v) => (cluster(o).name = v) },
  { names: ["cluster_advertise"], value: true, set: (o, v) => (cluster(o).advertise = v) },
  { names: ["no_advertise"], value: false, set: (o, v) => (cluster(o).noAdvertise = boolFlag(v)) },
  {
    names: ["connect_retries"],
    value: true,
    set: (o, v) => (cluster(o).connectRetries = intFlag("connect_retries", v)),
  },
];

function splitList(v: string): string[] {
  return v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

const BY_NAME = new Map<string, FlagDef>();
for (const f of FLAGS) for (const n of f.names) BY_NAME.set(n, f);

/**
 * Parses argv (without the program and subcommand names) into validated options (`reload`: for
 * a running server, see validateOptions).
 */
export function parseFlags(argv: string[], warn: Warn, reload = false): ParsedFlags {
  let configFile = "";
  let help = false;
  let version = false;
  let testConfig = false;
  let signal = "";
  const sets: Array<[FlagDef, string]> = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("-") || arg === "-" || arg === "--") {
      throw new OptionsError(`unexpected argument "${arg}" (flags only; see --help)`);
    }
    const body = arg.replace(/^--?/, "");
    const eq = body.indexOf("=");
    const name = eq >= 0 ? body.slice(0, eq) : body;
    let inline = eq >= 0 ? body.slice(eq + 1) : null;
    const takeValue = (): string => {
      if (inline !== null) return inline;
      const next = argv[i + 1];
      if (next === undefined) throw new OptionsError(`flag needs an argument: -${name}`);
      i++;
      return next;
    };
    switch (name) {
      case "h":
      case "help":
        help = true;
        continue;
      case "v":
      case "version":
        version = true;
        continue;
      case "t":
        testConfig = true;
        continue;
      case "c":
      case "config":
        configFile = takeValue();
        continue;
      case "sl":
      case "signal":
        signal = takeValue();
        continue;
    }
    const def = BY_NAME.get(name);
    if (!def) throw new OptionsError(`flag provided but not defined: -${name}`);
    if (def.value) {
      sets.push([def, takeValue()]);
    } else {
      sets.push([def, inline ?? ""]);
      inline = null;
    }
  }
  const opts = defaultOptions();
  if (configFile) loadConfigFile(opts, configFile, warn);
  for (const [def, v] of sets) def.set(opts, v);
  if (opts.cluster && opts.cluster.routes.length > 0 && !hasClusterListen(argv, opts)) {
    throw new OptionsError(
      "solicited routes require cluster capabilities, e.g. --cluster nats://0.0.0.0:6222",
    );
  }
  // nats-server: the monitor listens on the client host unless told otherwise.
  if (opts.httpHost === "") opts.httpHost = opts.host;
  return { options: validateOptions(opts, reload), help, version, testConfig, signal };
}

/** nats-server refuses -routes without a cluster listen address (flag or config). */
function hasClusterListen(argv: string[], opts: Options): boolean {
  if (argv.some((a) => /^--?(cluster|cluster_listen)(=|$)/.test(a))) return true;
  return opts.configFile !== "" && opts.cluster !== null && opts.cluster.port !== 0;
}

export const USAGE = `Usage: shoal nats-server [options]

Server Options:
    -a, --addr, --net <host>         Bind to host address (default: 0.0.0.0)
    -p, --port <port>                Use port for clients (default: 4222, -1 for random)
    -n, --name
        --server_name <server_name>  Server name (default: auto)
    -P, --pid <file>                 File to store PID
    -m, --http_port <port>           Use port for http monitoring
    -ms,--https_port <port>          Use port for https monitoring
    -c, --config <file>              Configuration file
    -t                               Test configuration and exit
    -sl,--signal <signal>[=<pid>]    Send signal to shoal nats-server process (ldm, stop, quit, term, reopen, reload)
                                     <pid> can be either a PID (e.g. 1) or the path to a PID file
        --client_advertise <string>  Client URL to advertise to other servers
        --ports_file_dir <dir>       Creates a ports file in the specified directory (nats-server_<pid>.ports).

Logging Options:
    -l, --log <file>                 File to redirect log output
    -T, --logtime                    Timestamp log entries (default: true)
    -D, --debug                      Enable debugging output
    -V, --trace                      Trace the raw protocol
    -DV                              Debug and trace

Authorization Options:
        --user <user>                User required for connections
        --pass <password>            Password required for connections
        --auth <token>               Authorization token required for connections

TLS Options:
        --tls                        Enable TLS, do not verify clients (default: false)
        --tlscert <file>             Server certificate file
        --tlskey <file>              Private key for server certificate
        --tlsverify                  Enable TLS, verify client certificates
        --tlscacert <file>           Client certificate CA for verification

Cluster Options:
        --routes <rurl-1, rurl-2>    Routes to solicit and connect
        --cluster <cluster-url>      Cluster URL for solicited routes
        --cluster_name <string>      Cluster Name, if not set one will be dynamically generated
        --no_advertise <bool>        Do not advertise known cluster information to clients
        --cluster_advertise <string> Cluster URL to advertise to other servers
        --connect_retries <number>   For implicit routes, number of connect retries
        --cluster_listen <url>       Cluster url from which members can solicit routes

Common Options:
    -h, --help                       Show this message
    -v, --version                    Show version
`;
