// Validation of service specs at the API boundary: a bad spec is refused with a message that
// names the problem, and nothing is stored.

import { ManagerError } from "./errors.js";
import { parseConstraint } from "./scheduler/index.js";
import { networkOf, updateConfigOf, type ServiceSpec } from "../api/types.js";

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

function invalid(msg: string): never {
  throw new ManagerError("ERR_INVALID", msg);
}

export function validateSpec(spec: ServiceSpec): void {
  if (!NAME.test(spec.name)) {
    invalid(`invalid service name "${spec.name}": use letters, digits, '_', '.', '-' (max 63)`);
  }
  if (spec.driver === "process" && spec.command.length === 0) {
    invalid("a command is required: shoal service create [OPTIONS] -- COMMAND [ARG...]");
  }
  if (spec.driver === "docker" && !spec.image) invalid("the docker driver needs an image");
  if ("replicated" in spec.mode) {
    const n = spec.mode.replicated.replicas;
    if (!Number.isInteger(n) || n < 0)
      invalid(`invalid replicas value ${n}: must be a non-negative integer`);
  }
  const seen = new Set<string>();
  for (const p of spec.ports) {
    for (const port of [p.published, p.target]) {
      if (!Number.isInteger(port) || port < 1 || port > 65535)
        invalid(`invalid port ${port}: must be 1-65535`);
    }
    const key = `${p.published}/${p.protocol}`;
    if (seen.has(key)) invalid(`published port ${key} is given twice`);
    seen.add(key);
  }
  const rp = spec.restartPolicy;
  if (!["none", "on-failure", "any"].includes(rp.condition)) {
    invalid(`invalid restart condition "${rp.condition}": none, on-failure or any`);
  }
  if (rp.delayMs < 0 || rp.windowMs < 0 || rp.maxAttempts < 0)
    invalid("restart policy values cannot be negative");
  if (spec.limits.cpus < 0 || spec.limits.memoryBytes < 0) invalid("limits cannot be negative");
  if (spec.stopGracePeriodMs < 0) invalid("stop grace period cannot be negative");
  const net = networkOf(spec);
  if (net !== "host" && net !== "bridge") invalid(`invalid network mode "${net}": host or bridge`);
  const u = updateConfigOf(spec);
  if (!Number.isInteger(u.parallelism) || u.parallelism < 0)
    invalid(`invalid update parallelism ${u.parallelism}: must be a non-negative integer`);
  if (!(u.delayMs >= 0)) invalid("update delay cannot be negative");
  if (u.order !== "stop-first" && u.order !== "start-first")
    invalid(`invalid update order "${u.order}": stop-first or start-first`);
  for (const c of spec.constraints) {
    try {
      parseConstraint(c);
    } catch (err) {
      invalid((err as Error).message);
    }
  }
}
