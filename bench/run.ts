// Entry point of `npm run bench`: picks the suites named on the command line (default `nats`),
// runs them one after another, prints each one's table and optionally writes all results, with a
// description of the machine, as JSON. To add a suite, write it in its own file (exporting a
// `Suite`, see report.ts) and list it in SUITES below.
//
//   npm run bench                       # the nats suite
//   npm run bench -- nats --json out.json --duration 3 --repeat 2 --servers go
//   npm run bench -- cli orchestrator   # CLI start and one-node orchestration, vs Docker
//   npm run bench -- network dns        # overlay networks and embedded DNS
//   npm run bench -- stack              # stack deploy and redeploy, vs Docker Swarm
//   npm run bench -- router             # HTTP router vs HAProxy and nginx, load from wrk
//   npm run bench -- store              # state store writes: embedded vs etcd
//   npm run bench -- ha --repeat 3      # HA walkthrough: failover and scale-up times (median of 3)
//   npm run bench -- managers store     # manager failover vs Docker Swarm; etcd store throughput
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { cliSuite } from "./cli.js";
import { clusterSuite } from "./cluster.js";
import { messageLoss, natsSuite } from "./nats.js";
import { orchestratorSuite } from "./orchestrator.js";
import { swarmSuite } from "./swarm.js";
import { dispatcherSuite } from "./dispatcher.js";
import { dnsSuite } from "./dns.js";
import { networkSuite } from "./network.js";
import { stackSuite } from "./stack.js";
import { routerSuite } from "./router.js";
import { storeSuite } from "./store.js";
import { haSuite } from "./ha.js";
import { managersSuite } from "./managers.js";
import { installExitHooks } from "./procs.js";
import { formatTable, machineInfo, type Suite, type SuiteResult } from "./report.js";

const SUITES: Suite[] = [
  natsSuite,
  orchestratorSuite,
  clusterSuite,
  swarmSuite,
  dispatcherSuite,
  cliSuite,
  dnsSuite,
  networkSuite,
  stackSuite,
  routerSuite,
  storeSuite,
  haSuite,
  managersSuite,
];

const COMMON = {
  json: { type: "string", description: "also write the results as JSON to this file" },
  duration: { type: "string", description: "seconds per timed scenario (default 3)" },
  repeat: { type: "string", description: "run each scenario N times, keep the best (default 1)" },
  help: { type: "boolean", description: "show this help" },
} as const;

function usage(): string {
  const lines = ["usage: npm run bench -- [suite...] [options]", "", "suites:"];
  for (const s of SUITES) lines.push(`  ${s.name.padEnd(14)} ${s.description}`);
  lines.push("", "options:");
  const all = { ...COMMON, ...Object.assign({}, ...SUITES.map((s) => s.options)) };
  for (const [name, o] of Object.entries(all) as Array<[string, { description: string }]>) {
    lines.push(`  --${name.padEnd(12)} ${o.description}`);
  }
  return lines.join("\n");
}

async function main(argv: string[]): Promise<number> {
  const options: Record<string, { type: "string" | "boolean" }> = {};
  for (const [name, o] of Object.entries(COMMON)) options[name] = { type: o.type };
  for (const s of SUITES) {
    for (const [name, o] of Object.entries(s.options)) options[name] = { type: o.type };
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    console.error(`bench: ${err instanceof Error ? err.message : String(err)}\n\n${usage()}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(usage());
    return 0;
  }
  const names = positionals.length > 0 ? positionals : ["nats"];
  const chosen: Suite[] = [];
  for (const name of names) {
    const suite = SUITES.find((s) => s.name === name);
    if (!suite) {
      console.error(`bench: unknown suite "${name}"\n\n${usage()}`);
      return 2;
    }
    chosen.push(suite);
  }
  const seconds = values.duration === undefined ? 3 : Number(values.duration);
  if (!(seconds > 0 && seconds <= 600)) {
    console.error(`bench: --duration must be a number of seconds in (0, 600]`);
    return 2;
  }

  const repeat = values.repeat === undefined ? 1 : Number(values.repeat);
  if (!(Number.isInteger(repeat) && repeat >= 1 && repeat <= 20)) {
    console.error(`bench: --repeat must be an integer from 1 to 20`);
    return 2;
  }

  installExitHooks();
  const machine = machineInfo();
  console.error(
    `bench: ${machine.nproc} CPUs (${machine.cpuModel}), node ${machine.node}, ${machine.os}`,
  );
  const results: SuiteResult[] = [];
  const started = Date.now();
  for (const suite of chosen) {
    const result = await suite.run({
      durationMs: seconds * 1000,
      repeat,
      options: values,
      log: (line) => console.error(line),
    });
    results.push(result);
    console.log(`\n${formatTable(result)}\n`);
  }
  console.error(`bench: done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  for (const line of messageLoss) console.error(`bench: FAILED: ${line}`);
  if (typeof values.json === "string") {
    const doc = { date: new Date().toISOString(), machine, suites: results };
    writeFileSync(values.json, `${JSON.stringify(doc, null, 2)}\n`);
    console.error(`bench: wrote ${values.json}`);
  }
  return messageLoss.length > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  // Exit explicitly: nothing a suite forgot to close may keep the bench alive (the exit hook
  // kills any process still running).
  (code) => process.exit(code),
  (err) => {
    console.error(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
