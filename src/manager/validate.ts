// Validation of service specs before the manager stores them: the spec's schema first (types,
// ranges, enums, unknown fields — src/api/types.ts), then what a schema cannot say: a command or
// an image for the chosen driver, a published port given once, placement constraints that parse.
// A bad spec is refused with a message that names the problem, and nothing is stored.

import { ManagerError } from "./errors.js";
import { parseConstraint } from "./scheduler/index.js";
import { check, closed } from "../api/schema.js";
import { ServiceSpecSchema, type ServiceSpec } from "../api/types.js";

const SpecInput = closed(ServiceSpecSchema);

function invalid(msg: string): never {
  throw new ManagerError("ERR_INVALID", msg);
}

export function validateSpec(spec: ServiceSpec): void {
  check(SpecInput, spec, "spec");
  if (spec.driver === "process" && spec.command.length === 0) {
    invalid("a command is required: shoal service create [OPTIONS] -- COMMAND [ARG...]");
  }
  if (spec.driver === "docker" && !spec.image) invalid("the docker driver needs an image");
  const seen = new Set<string>();
  for (const p of spec.ports) {
    const key = `${p.published}/${p.protocol}`;
    if (seen.has(key)) invalid(`published port ${key} is given twice`);
    seen.add(key);
  }
  for (const c of spec.constraints) {
    try {
      parseConstraint(c);
    } catch (err) {
      invalid((err as Error).message);
    }
  }
}
