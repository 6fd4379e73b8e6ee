// Every `shoal` command, its flags and its help, declared with commander. Declaring loads nothing
// but this file: each action imports the module that does the work when it runs (the daemon only
// for `daemon` and `up`), so `shoal version` or `shoal service ls` start in milliseconds, and
// `--help` on any command never contacts the daemon. Parse errors come back as CommandFailure,
// which main.ts prints in Docker's words.

import { Command, CommanderError, Option } from "commander";
import { SHOAL_VERSION } from "../lib/version.js";
import { collect } from "./args.js";
import { commandPath, UsageError } from "./errors.js";
import type { CreateOptions, ListOptions, UpdateOptions } from "./service.js";
import type { DaemonFlags } from "./daemon-options.js";
import type { JoinFlags } from "./swarm.js";
import type { SwarmCaOptions } from "./swarm-ca.js";
import type { NodeUpdateOptions } from "./node.js";
import type { NetworkCreateOptions } from "./network.js";

/**
 * A commander Command that also takes Go's spelling of boolean flags, `--detach=false` and
 * `-q=true`, as Docker's CLI does: `=true` is the flag; `=false` is the flag's hidden negation
 * where the command declares one (a flag that is on unless given false), else it leaves the
 * flag out (every other boolean flag is off unless given). Words after `--`, and after the first word of a command whose
 * own flags follow it (`service create ... node -e x`), are not touched.
 */
class ShoalCommand extends Command {
  private stopAtFirstWord = false;

  override createCommand(name?: string): Command {
    return new ShoalCommand(name);
  }

  override passThroughOptions(passThrough = true): this {
    this.stopAtFirstWord = passThrough;
    return super.passThroughOptions(passThrough);
  }

  override parseOptions(argv: string[]): ReturnType<Command["parseOptions"]> {
    const out = [...argv];
    for (let i = 0; i < out.length; i++) {
      const a = out[i]!;
      if (a === "--") break;
      if (!a.startsWith("-") || a === "-") {
        if (this.stopAtFirstWord) break;
        continue;
      }
      const m = /^(--?[^=]+)=(.*)$/.exec(a);
      const name = m ? m[1]! : a;
      const opt = this.options.find((o) => o.long === name || o.short === name);
      if (!opt) continue;
      if (opt.required || opt.optional) {
        if (!m) i++; // its value is the next word
        continue;
      }
      if (m && /^(true|false)$/i.test(m[2]!)) {
        const negation =
          opt.long && this.options.find((o) => o.long === `--no-${opt.long!.slice(2)}`);
        if (m[2]!.toLowerCase() === "true") out[i] = m[1]!;
        else if (negation) out[i] = negation.long!;
        else out.splice(i--, 1);
      }
    }
    return super.parseOptions(out);
  }
}

/** A parse error (or help, or --version) of one command. */
export class CommandFailure extends Error {
  constructor(
    readonly error: CommanderError,
    readonly command: Command,
  ) {
    super(error.message);
  }
}

export { commandPath };

export interface ProgramState {
  /** The exit code the action returned. */
  code: number;
  /** The command line as given: `service update` reads the command after `--` from it. */
  argv: string[];
}

type Action = (cmd: Command) => Promise<number>;

function action(state: ProgramState, fn: Action) {
  return async (...args: unknown[]): Promise<void> => {
    const cmd = args[args.length - 1] as Command;
    try {
      state.code = await fn(cmd);
    } catch (err) {
      if (err instanceof UsageError && err.helpFor === undefined) err.helpFor = commandPath(cmd);
      throw err;
    }
  };
}

const DAEMON_HELP = `
The address other nodes reach this one on is --advertise-addr (an IP, IP:PORT, [IPv6]:PORT or
an interface name such as eth0); else the --listen-addr host when it is not a wildcard; else the
machine's address (the default route's interface, or its only one).`;

function daemonFlags(cmd: Command): Command {
  return cmd
    .option(
      "--data-dir <dir>",
      "state, logs and the API socket (default $SHOAL_DATA_DIR or ~/.shoal)",
    )
    .option(
      "--listen-addr <addr>",
      "listen address for joins, <ip|interface>[:port] (default 0.0.0.0:2377)",
    )
    .option(
      "--advertise-addr <addr>",
      "address other nodes reach this one on, <ip|interface>[:port]",
    )
    .option(
      "--nats-port <port>",
      "client port of the embedded message server (default 4222, -1 random)",
    )
    .option(
      "--monitor-port <port>",
      "HTTP monitoring port of the embedded message server (0 off, -1 random)",
    )
    .option(
      "--api-addr <host:port>",
      "also serve the API on TCP (off loopback with mutual TLS: a manager's certificate from the swarm's CA)",
    )
    .option("--api-tls", "mutual TLS on a loopback --api-addr too")
    .option("--publish-addr <host>", "bind address of published ports (default 0.0.0.0)")
    .option("--cpus <n>", "CPUs this node offers to tasks (default: the machine's)")
    .option("--memory <size>", "memory this node offers to tasks, e.g. 4g (default: the machine's)")
    .option(
      "--default-addr-pool <cidr>",
      "address pool networks get subnets from, when this creates the swarm (default 10.0.0.0/8)",
    )
    .option(
      "--default-addr-pool-mask-length <n>",
      "prefix length of the subnets taken from the pool (default 24)",
    )
    .option(
      "--cert-expiry <duration>",
      "validity period of node certificates, when this creates the swarm (default 2160h0m0s)",
    )
    .option(
      "--fencing-margin <duration>",
      "how long past the managers' node-down grace a node that lost them keeps its tasks before stopping them (default: 2 heartbeat periods, at least 1s; off: never)",
    )
    .option(
      "--consul-addr <addr>",
      'managers: the Consul-compatible API, [ip]:port (default :8500, "" off)',
    )
    .option(
      "--consul-dns-addr <addr>",
      'managers: its DNS interface for <service>.service.consul, [ip]:port (default :8600, "" off)',
    )
    .option(
      "--http-addr <addr>",
      'the HTTP router that sends requests to services by host name, [ip]:port (default :80, "" off)',
    )
    .option("--http-access-log", "print an access log line (common log format) per routed request")
    .option(
      "--metrics-addr <addr>",
      'the node\'s Prometheus /metrics (and on managers /sd, http_sd_configs), [ip]:port (default :9323, "" off)',
    )
    .option(
      "--dashboard-addr <addr>",
      'managers: the web dashboard, [ip]:port (default 127.0.0.1:8080, "" off; any other address than loopback asks for `shoal dashboard token`)',
    )
    .option(
      "--store <etcd://host:port,...>",
      "managers: keep the swarm's state in this etcd cluster, for several managers (default: the embedded store; etcds:// for TLS)",
    )
    .option(
      "--store-cacert <file>",
      "managers, and workers that may be promoted: the CA of the etcd members' certificates (TLS)",
    )
    .option("--store-cert <file>", "managers: the client certificate etcd asks for (TLS)")
    .option("--store-key <file>", "managers: the key of --store-cert")
    .option("-D, --debug", "log debug messages")
    .addHelpText("after", DAEMON_HELP);
}

/** The flags `service create` and `service update` share. */
function specFlags(cmd: Command): Command {
  return (
    cmd
      .option("--replicas <n>", "number of tasks")
      .option(
        "--restart-condition <condition>",
        "restart when: none, on-failure or any (default any)",
      )
      .option("--restart-delay <duration>", "delay between restart attempts (default 5s)")
      .option(
        "--restart-max-attempts <n>",
        "maximum number of restarts before giving up (0: no limit)",
      )
      .option("--restart-window <duration>", "window used to evaluate the restart policy")
      .option("--limit-cpu <cpus>", "limit CPUs")
      .option("--limit-memory <bytes>", "limit memory (e.g. 512m)")
      .option("--reserve-cpu <cpus>", "reserve CPUs")
      .option("--reserve-memory <bytes>", "reserve memory")
      .option("-w, --workdir <dir>", "working directory of the task")
      .option(
        "--stop-grace-period <duration>",
        "time to wait before force killing a task (default 10s)",
      )
      .option("--stop-signal <signal>", "signal to stop the task (default SIGTERM)")
      .option(
        "--network <network>",
        "network mode host or bridge (default host), or a network to join: NAME[,alias=ALIAS] (repeatable)",
        collect,
      )
      .option("--endpoint-mode <mode>", "endpoint mode: vip or dnsrr (default vip)")
      .option("--driver <driver>", "task driver: process or docker (default process)")
      .option(
        "--image <image>",
        "run the image with the docker driver (the image must be on the nodes)",
      )
      .option(
        "--update-parallelism <n>",
        "maximum number of tasks updated at once (0: all at once)",
      )
      .option("--update-delay <duration>", "delay between updates")
      .option("--update-order <order>", "update order: stop-first or start-first")
      .option(
        "--update-failure-action <action>",
        "action on update failure: pause, continue or rollback",
      )
      .option(
        "--update-monitor <duration>",
        "duration after each task update to monitor for failure",
      )
      .option("--update-max-failure-ratio <ratio>", "failure rate to tolerate during an update")
      .option("--rollback-parallelism <n>", "maximum number of tasks rolled back at once (0: all)")
      .option("--rollback-delay <duration>", "delay between task rollbacks")
      .option("--rollback-order <order>", "rollback order: stop-first or start-first")
      .option("--rollback-failure-action <action>", "action on rollback failure: pause or continue")
      .option(
        "--rollback-monitor <duration>",
        "duration after each task rollback to monitor for failure",
      )
      .option("--rollback-max-failure-ratio <ratio>", "failure rate to tolerate during a rollback")
      .option("--replicas-max-per-node <n>", "maximum number of tasks per node (0: unlimited)")
      .option("--health-cmd <command>", "command to run to check health (run with /bin/sh -c)")
      .option("--health-interval <duration>", "time between running the check (default 30s)")
      .option("--health-timeout <duration>", "maximum time to allow one check to run (default 30s)")
      .option("--health-retries <n>", "consecutive failures needed to report unhealthy (default 3)")
      .option(
        "--health-start-period <duration>",
        "start period for the task to initialize before failures count (default 0s)",
      )
      .option(
        "--health-start-interval <duration>",
        "time between running the check during the start period (default 5s)",
      )
      // The hidden positive twin keeps commander from giving `healthcheck` a default of true: a
      // spec's check changes only when a health flag is given.
      .addOption(new Option("--healthcheck").hideHelp())
      .option("--no-healthcheck", "disable any container-specified HEALTHCHECK")
      .option("-u, --user <user>", "username or UID (format: <name|uid>[:<group|gid>])")
      .option("--autoscale-min <n>", "autoscale: the fewest replicas (default 1)")
      .option("--autoscale-max <n>", "autoscale: the most replicas (required to autoscale)")
      .option("--autoscale-cpu <percent>", "autoscale: target CPU per task, e.g. 70% (0: none)")
      .option(
        "--autoscale-memory <percent>",
        "autoscale: target memory per task, e.g. 80% of its limit (0: none)",
      )
      .option("--autoscale-rps <n>", "autoscale: target requests per second per task (0: none)")
      .option(
        "--autoscale-stabilization <duration>",
        "autoscale: scale down only to the highest need of this window (default 5m)",
      )
      .option("-d, --detach", "exit immediately instead of waiting for the service to converge")
      .option("-q, --quiet", "suppress progress output")
  );
}

function listFlags(cmd: Command, filters: string): Command {
  return cmd
    .option("-q, --quiet", "only display IDs")
    .option(
      "--format <format>",
      "format output: table, json, or a Go template (table {{.ID}}\\t{{.Name}})",
    )
    .option("-f, --filter <filter>", `filter output, key=value (${filters}); repeatable`, collect);
}

/**
 * `service update`'s words: the service, then (only after `--`) a new command. Commander gives
 * both as one list; the command line tells how many came after the `--`.
 */
export function splitUpdateArgs(
  args: string[],
  argv: string[],
): { ref: string; command: string[] } {
  const dd = argv.indexOf("--");
  const after = dd >= 0 ? argv.length - dd - 1 : 0;
  const words = args.slice(0, args.length - after);
  if (words.length !== 1)
    throw new UsageError('"shoal service update" requires exactly 1 argument: SERVICE');
  return { ref: words[0]!, command: args.slice(1) };
}

/** Builds the command tree; the actions record their exit code in the returned state. */
export function buildProgram(argv: string[]): { program: Command; state: ProgramState } {
  const state: ProgramState = { code: 0, argv };
  const run = (fn: Action) => action(state, fn);
  const service = () => import("./service.js");
  const node = () => import("./node.js");
  const swarm = () => import("./swarm.js");
  const network = () => import("./network.js");
  const stack = () => import("./stack.js");
  const secret = () => import("./secret.js");
  const config = () => import("./config.js");

  const program = new ShoalCommand("shoal")
    .usage("COMMAND [ARGS...]")
    .description("A NATS-compatible message-server cluster and a Swarm-style orchestrator.")
    .version(`shoal version ${SHOAL_VERSION}`, "-v, --version", "show the shoal version")
    .helpOption("-h, --help", "show help")
    .helpCommand("help [command]", "show help for a command")
    .enablePositionalOptions()
    .showSuggestionAfterError(false)
    // Help asked for by mistake (`shoal service`) goes to stdout too, as Docker prints it.
    .configureOutput({ writeErr: (s) => process.stdout.write(s), outputError: () => {} })
    .addHelpText(
      "after",
      `
Environment:
  SHOAL_DATA_DIR   the daemon's data directory (the CLI finds the API socket there)
  SHOAL_HOST       the daemon's API: unix:///path/to/shoal.sock or tcp://host:port

Run 'shoal COMMAND --help' for more information on a command.`,
    );

  program
    .command("nats-server")
    .description("Run a NATS message server (nats-server's flags; see shoal nats-server --help)")
    .usage("[options]")
    .argument("[flags...]")
    .helpOption(false)
    .addHelpText("after", "\nnats-server's flags: shoal nats-server --help")
    .allowUnknownOption()
    .passThroughOptions()
    .action(
      run(async (cmd) => {
        const { natsServerCommand } = await import("../daemon/nats-server.js");
        return natsServerCommand(cmd.args);
      }),
    );

  daemonFlags(
    program
      .command("up")
      .description(
        "Run a one-node swarm in the foreground: manager, agent, message server on 4222 and monitoring on 8222",
      ),
  ).action(run(async (cmd) => (await swarm()).daemon(cmd.opts<DaemonFlags>(), true)));

  daemonFlags(
    program
      .command("init")
      .description("Start the shoal daemon on this machine as a manager (detached)"),
  ).action(run(async (cmd) => (await swarm()).init(cmd.opts<DaemonFlags>())));

  daemonFlags(
    program.command("daemon").description("Run the shoal daemon in the foreground"),
  ).action(run(async (cmd) => (await swarm()).daemon(cmd.opts<DaemonFlags>(), false)));

  const joinCommand = (parent: Command) =>
    daemonFlags(
      parent
        .command("join")
        .description("Join a swarm as a worker (starts the daemon detached)")
        .argument("<host:port>", "a manager's join address (port 2377 if not given)")
        .option("--token <token>", "the join token (shoal swarm join-token worker)"),
    ).action(run(async (cmd) => (await swarm()).joinSwarm(cmd.args[0]!, cmd.opts<JoinFlags>())));
  joinCommand(program);

  const leaveCommand = (parent: Command) =>
    parent
      .command("leave")
      .description("Leave the swarm: stop the daemon on this machine and its tasks")
      .option("-f, --force", "leave even if this node is a manager")
      .action(run(async (cmd) => (await swarm()).leave(cmd.opts())));
  leaveCommand(program);

  // ---- shoal service ----
  const svc = program.command("service").description("Manage services");
  specFlags(
    svc
      .command("create")
      .description("Create a new service")
      .usage("[options] [--image IMAGE] [--] [COMMAND [ARG...]]")
      .argument("[command...]", "the task's command and its arguments")
      .option("--name <name>", "service name")
      .option("--mode <mode>", "service mode: replicated or global (default replicated)")
      .option("-e, --env <KEY=VALUE>", "set environment variables", collect)
      .option("-p, --publish <published:target>", "publish a port as a node port", collect)
      .option("-l, --label <KEY=VALUE>", "service labels", collect)
      .option("--constraint <expr>", "placement constraints", collect)
      .option("--placement-pref <pref>", "add a placement preference (spread=LABEL)", collect)
      .option(
        "--mount <mount>",
        "attach a filesystem mount: type=bind|volume|tmpfs,source=SRC,target=DST[,readonly]",
        collect,
      )
      .option(
        "--secret <secret>",
        "give the tasks a secret: NAME or source=NAME[,target=T,uid=,gid=,mode=]",
        collect,
      )
      .option(
        "--config <config>",
        "give the tasks a config: NAME or source=NAME[,target=T,uid=,gid=,mode=]",
        collect,
      )
      // The first word that is not a flag starts the command: its own flags are its own.
      .passThroughOptions(),
  ).action(run(async (cmd) => (await service()).create(cmd.args, cmd.opts<CreateOptions>())));

  specFlags(
    svc
      .command("update")
      .description("Update a service")
      .usage("[options] SERVICE [-- COMMAND [ARG...]]")
      .argument("<service>")
      .argument("[command...]", "a new command for the tasks, after --")
      .option("--env-add <KEY=VALUE>", "add or update an environment variable", collect)
      .option("--env-rm <KEY>", "remove an environment variable", collect)
      .option("--label-add <KEY=VALUE>", "add or update a service label", collect)
      .option("--label-rm <KEY>", "remove a label", collect)
      .option("--publish-add <published:target>", "add or update a published port", collect)
      .option("--publish-rm <published>", "remove a published port", collect)
      .option("--constraint-add <expr>", "add or update a placement constraint", collect)
      .option("--constraint-rm <expr>", "remove a constraint", collect)
      .option("--placement-pref-add <pref>", "add a placement preference", collect)
      .option("--placement-pref-rm <pref>", "remove a placement preference", collect)
      .option("--network-add <network>", "add a network: NAME[,alias=ALIAS]", collect)
      .option("--network-rm <network>", "remove a network", collect)
      .option("--mount-add <mount>", "add or update a mount on a service", collect)
      .option("--mount-rm <target>", "remove a mount by its target path", collect)
      .option("--secret-add <secret>", "add or update a secret on a service", collect)
      .option("--secret-rm <secret>", "remove a secret", collect)
      .option("--config-add <config>", "add or update a config on a service", collect)
      .option("--config-rm <config>", "remove a configuration file", collect)
      .option("--args <args>", "the command's arguments")
      .option("--command <command>", "the command")
      .option("--force", "force an update even if no changes require it")
      .option("--rollback", "roll back to the previous specification")
      .option("--autoscale-off", "stop autoscaling the service (its replicas stay)"),
  ).action(
    run(async (cmd) => {
      const { ref, command } = splitUpdateArgs(cmd.args, state.argv);
      return (await service()).update(ref, command, cmd.opts<UpdateOptions>());
    }),
  );

  svc
    .command("rollback")
    .description("Revert changes to a service's configuration")
    .argument("<service>")
    .option("-d, --detach", "exit immediately instead of waiting for the service to converge")
    .option("-q, --quiet", "suppress progress output")
    .action(
      run(async (cmd) => {
        const o = cmd.opts<{ detach?: boolean; quiet?: boolean }>();
        return (await service()).rollback(cmd.args[0]!, !!o.detach, !!o.quiet);
      }),
    );

  svc
    .command("scale")
    .description("Scale one or multiple replicated services")
    .argument("<service=replicas...>")
    .option("-d, --detach", "exit immediately instead of waiting for the service to converge")
    .action(run(async (cmd) => (await service()).scale(cmd.args, cmd.opts())));

  listFlags(
    svc.command("ls").alias("list").description("List services"),
    "id, name, label, mode",
  ).action(run(async (cmd) => (await service()).ls(cmd.opts<ListOptions>())));

  listFlags(
    svc
      .command("ps")
      .description("List the tasks of one or more services")
      .argument("<service...>"),
    "id, name, node, desired-state",
  )
    .option("--no-trunc", "do not truncate output")
    .action(
      run(async (cmd) => {
        const o = cmd.opts<ListOptions & { trunc?: boolean }>();
        return (await service()).ps(cmd.args, { ...o, noTrunc: o.trunc === false });
      }),
    );

  svc
    .command("inspect")
    .description("Display detailed information on one or more services")
    .argument("<service...>")
    .option("--pretty", "print the information in a human friendly format")
    .action(run(async (cmd) => (await service()).inspect(cmd.args, cmd.opts())));

  svc
    .command("rm")
    .alias("remove")
    .description("Remove one or more services")
    .argument("<service...>")
    .action(run(async (cmd) => (await service()).rm(cmd.args)));

  svc
    .command("logs")
    .description("Fetch the logs of a service")
    .argument("<service>")
    .option("-f, --follow", "follow log output")
    .option(
      "-n, --tail <lines>",
      'number of lines to show from the end of the logs (default "all")',
    )
    .action(run(async (cmd) => (await service()).logs(cmd.args[0]!, cmd.opts())));

  // ---- shoal node ----
  const nodes = program.command("node").description("Manage nodes");
  listFlags(
    nodes.command("ls").alias("list").description("List nodes in the swarm"),
    "id, label, membership, name, role",
  ).action(run(async (cmd) => (await node()).ls(cmd.opts<ListOptions>())));
  nodes
    .command("inspect")
    .description("Display detailed information on one or more nodes (self: this node)")
    .argument("<node...>")
    .option("--pretty", "print the information in a human friendly format")
    .action(run(async (cmd) => (await node()).inspect(cmd.args, cmd.opts())));
  nodes
    .command("update")
    .description("Update a node")
    .argument("<node>")
    .option("--availability <availability>", "availability of the node: active, pause or drain")
    .option("--label-add <key=value>", "add or update a node label", collect)
    .option("--label-rm <key>", "remove a node label", collect)
    .option("--role <role>", "role of the node: worker or manager")
    .action(run(async (cmd) => (await node()).update(cmd.args[0]!, cmd.opts<NodeUpdateOptions>())));
  nodes
    .command("rm")
    .alias("remove")
    .description("Remove one or more nodes from the swarm")
    .argument("<node...>")
    .option("-f, --force", "force remove a node from the swarm")
    .action(run(async (cmd) => (await node()).rm(cmd.args, cmd.opts())));
  nodes
    .command("promote")
    .description("Promote one or more nodes to manager in the swarm")
    .argument("<node...>")
    .action(run(async (cmd) => (await node()).setRole(cmd.args, "manager")));
  nodes
    .command("demote")
    .description("Demote one or more nodes from manager in the swarm")
    .argument("<node...>")
    .action(run(async (cmd) => (await node()).setRole(cmd.args, "worker")));

  // ---- shoal network ----
  const nets = program.command("network").description("Manage networks");
  nets
    .command("create")
    .description("Create a network")
    .argument("<network>")
    .option(
      "-d, --driver <driver>",
      'driver to manage the network: overlay or bridge (default "overlay")',
    )
    .option("--subnet <subnet>", "subnet in CIDR format (default: a /24 from the address pool)")
    .option("--gateway <gateway>", "IPv4 gateway for the subnet (default: its first address)")
    .option("--attachable", "enable manual container attachment")
    .option("--internal", "restrict external access to the network")
    .option("--label <key=value>", "set metadata on a network", collect)
    .action(
      run(async (cmd) => (await network()).create(cmd.args[0]!, cmd.opts<NetworkCreateOptions>())),
    );
  listFlags(
    nets.command("ls").alias("list").description("List networks"),
    "driver, id, label, name, scope, type",
  )
    .option("--no-trunc", "do not truncate the output")
    .action(
      run(async (cmd) => {
        const o = cmd.opts<ListOptions & { trunc?: boolean }>();
        return (await network()).ls({ ...o, noTrunc: o.trunc === false });
      }),
    );
  nets
    .command("inspect")
    .description("Display detailed information on one or more networks")
    .argument("<network...>")
    .option("-f, --format <format>", "format the output using the given Go template")
    .action(run(async (cmd) => (await network()).inspect(cmd.args, cmd.opts())));
  nets
    .command("rm")
    .alias("remove")
    .description("Remove one or more networks")
    .argument("<network...>")
    .action(run(async (cmd) => (await network()).rm(cmd.args)));

  // ---- shoal secret / shoal config ----
  const secrets = program.command("secret").description("Manage secrets");
  secrets
    .command("create")
    .description("Create a secret from a file or STDIN as content")
    .usage("[OPTIONS] SECRET [file|-]")
    .argument("<secret>")
    .argument("<file>", 'a file, or "-" to read the secret from stdin')
    .option("-l, --label <key=value>", "secret labels", collect)
    .action(
      run(async (cmd) => (await secret()).create("secret", cmd.args[0]!, cmd.args[1]!, cmd.opts())),
    );
  listFlags(
    secrets.command("ls").alias("list").description("List secrets"),
    "id, label, name",
  ).action(run(async (cmd) => (await secret()).ls("secret", cmd.opts<ListOptions>())));
  secrets
    .command("inspect")
    .description("Display detailed information on one or more secrets")
    .argument("<secret...>")
    .option("--pretty", "print the information in a human friendly format")
    .action(run(async (cmd) => (await secret()).inspect("secret", cmd.args, cmd.opts())));
  secrets
    .command("rm")
    .alias("remove")
    .description("Remove one or more secrets")
    .argument("<secret...>")
    .action(run(async (cmd) => (await secret()).rm("secret", cmd.args)));

  const configs = program.command("config").description("Manage Swarm configs");
  configs
    .command("create")
    .description("Create a config from a file or STDIN")
    .usage("[OPTIONS] CONFIG file|-")
    .argument("<config>")
    .argument("<file>", 'a file, or "-" to read the config from stdin')
    .option("-l, --label <key=value>", "config labels", collect)
    .action(
      run(async (cmd) => (await config()).createConfig(cmd.args[0]!, cmd.args[1]!, cmd.opts())),
    );
  listFlags(
    configs.command("ls").alias("list").description("List configs"),
    "id, label, name",
  ).action(run(async (cmd) => (await config()).lsConfigs(cmd.opts<ListOptions>())));
  configs
    .command("inspect")
    .description("Display detailed information on one or more configs")
    .argument("<config...>")
    .option("--pretty", "print the information in a human friendly format")
    .action(run(async (cmd) => (await config()).inspectConfigs(cmd.args, cmd.opts())));
  configs
    .command("rm")
    .alias("remove")
    .description("Remove one or more configs")
    .argument("<config...>")
    .action(run(async (cmd) => (await config()).rmConfigs(cmd.args)));

  // ---- shoal stack ----
  const stacks = program.command("stack").description("Manage stacks");
  stacks
    .command("deploy")
    .alias("up")
    .description("Deploy a new stack or update an existing stack")
    .argument("<stack>")
    .option(
      "-c, --compose-file <file>",
      'path to a Compose file, or "-" to read from stdin (repeatable)',
      collect,
    )
    .option("--prune", "prune services that are no longer referenced")
    .option(
      "-d, --detach",
      "exit immediately instead of waiting for the stack services to converge (default true)",
    )
    // What --detach=false becomes (docker's stack deploy is detached unless told otherwise).
    .addOption(new Option("--no-detach").hideHelp())
    .action(
      run(async (cmd) => {
        const o = cmd.opts<{ composeFile?: string[]; prune?: boolean; detach?: boolean }>();
        return (await stack()).deploy(cmd.args[0]!, { ...o, detach: o.detach !== false });
      }),
    );
  stacks
    .command("ls")
    .alias("list")
    .description("List stacks")
    .option("--format <format>", "format output: table, json, or a Go template")
    .action(run(async (cmd) => (await stack()).ls(cmd.opts())));
  listFlags(
    stacks.command("services").description("List the services in the stack").argument("<stack>"),
    "id, name, label, mode",
  ).action(run(async (cmd) => (await stack()).services(cmd.args[0]!, cmd.opts<ListOptions>())));
  listFlags(
    stacks.command("ps").description("List the tasks in the stack").argument("<stack>"),
    "id, name, node, desired-state",
  )
    .option("--no-trunc", "do not truncate output")
    .action(
      run(async (cmd) => {
        const o = cmd.opts<ListOptions & { trunc?: boolean }>();
        return (await stack()).ps(cmd.args[0]!, { ...o, noTrunc: o.trunc === false });
      }),
    );
  stacks
    .command("rm")
    .aliases(["remove", "down"])
    .description("Remove one or more stacks")
    .argument("<stack...>")
    .action(run(async (cmd) => (await stack()).rm(cmd.args)));
  stacks
    .command("config")
    .description("Outputs the final config file, after doing merges and interpolations")
    .option("-c, --compose-file <file>", "path to a Compose file (repeatable)", collect)
    .action(run(async (cmd) => (await stack()).config(cmd.opts())));

  // ---- shoal swarm ----
  const sw = program.command("swarm").description("Manage the swarm");
  daemonFlags(sw.command("init").description("Same as shoal init")).action(
    run(async (cmd) => (await swarm()).init(cmd.opts<DaemonFlags>())),
  );
  joinCommand(sw);
  sw.command("join-token")
    .description("Manage join tokens")
    .argument("<worker|manager>")
    .option("-q, --quiet", "only display the token")
    .option("--rotate", "rotate the join token")
    .action(run(async (cmd) => (await swarm()).joinToken(cmd.args[0]!, cmd.opts())));
  sw.command("ca")
    .description("Display and rotate the root CA")
    .option("--rotate", "rotate the swarm CA: a new root, every node's certificate renewed from it")
    .option("-d, --detach", "exit immediately instead of waiting for the root rotation to converge")
    .option("-q, --quiet", "suppress progress output")
    .option("--cert-expiry <duration>", "validity period for node certificates (default 2160h0m0s)")
    .action(
      run(async (cmd) => (await import("./swarm-ca.js")).swarmCa(cmd.opts<SwarmCaOptions>())),
    );
  sw.command("update")
    .description("Update the swarm")
    .option("--heartbeat-period <duration>", "period of the nodes' heartbeats (default 1s)")
    .option("--cert-expiry <duration>", "validity period of node certificates (default 2160h0m0s)")
    .option(
      "--nats-anonymous [bool]",
      "let clients without credentials use the managers' message server (default false)",
    )
    .action(run(async (cmd) => (await swarm()).swarmUpdate(cmd.opts())));
  leaveCommand(sw);

  // ---- shoal events ----
  const events = () => import("./events.js");
  const ev = program
    .command("events")
    .description("Get real time events from the cluster")
    .option("--since <time>", "show events created since timestamp (or a duration back: 10m)")
    .option("--until <time>", "stream events until this timestamp (or duration)")
    .option(
      "-f, --filter <filter>",
      "filter output, key=value (type, event, service, node, network, stack, scope); repeatable",
      collect,
    )
    .option("--format <format>", "format output: json, or a Go template ({{.Type}} {{.Action}})")
    .action(run(async (cmd) => (await events()).events(cmd.opts())));
  ev.command("credentials")
    .description("Print the bus user that may only subscribe to the events ($SHOAL.events.>)")
    .action(run(async () => (await events()).credentials()));

  program
    .command("dashboard")
    .description("The web dashboard managers serve")
    .command("token")
    .description(
      "Print the dashboard's login token (asked for when it is bound to a non-loopback address)",
    )
    .option("--rotate", "replace the token (every open session ends)")
    .action(run(async (cmd) => (await swarm()).dashboardToken(cmd.opts())));

  program
    .command("store")
    .description("Manage this machine's cluster state store")
    .command("repair")
    .description(
      "Keep the valid part of a damaged store and move its damaged files aside (daemon stopped)",
    )
    .argument("<dir>", "the store directory, or a data dir that holds store/")
    .action(
      run(async (cmd) => {
        const { repairStoreCommand } = await import("../daemon/store-repair.js");
        return repairStoreCommand(cmd.args[0]!);
      }),
    );

  program
    .command("stats")
    .description("Display a live stream of tasks' resource usage statistics")
    .argument("[task-or-service...]")
    .option("--no-stream", "disable streaming stats and only pull the first result")
    .option(
      "--format <format>",
      "format output using a custom template ('table', 'json', or a Go template)",
    )
    .option("--no-trunc", "do not truncate output")
    .action(run(async (cmd) => (await import("./stats.js")).stats(cmd.args, cmd.opts())));

  program
    .command("info")
    .description("Display system-wide information")
    .action(run(async () => (await swarm()).info()));

  program
    .command("version")
    .description("Show the shoal version")
    .action(
      run(async () => {
        process.stdout.write(`shoal version ${SHOAL_VERSION}\n`);
        return 0;
      }),
    );

  // Parse errors, help and --version of any command throw, naming the command.
  const withExit = (cmd: Command): void => {
    cmd.exitOverride((err) => {
      throw new CommandFailure(err, cmd);
    });
    cmd.commands.forEach(withExit);
  };
  withExit(program);
  return { program, state };
}
