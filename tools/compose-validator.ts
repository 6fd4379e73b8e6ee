// Build step: the compose specification's schema (data/compose-spec.json) compiled once by Ajv
// into a standalone validator module (dist/data/compose-spec.validate.cjs). Compiling that
// schema takes most of a second, which every `shoal stack deploy` would otherwise pay again;
// src/cli/compose/load.ts loads this module and compiles at run time only when it is missing.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname } from "node:path";
import { Ajv } from "ajv";
import standaloneCode from "ajv/dist/standalone/index.js";
import { COMPOSE_AJV_OPTIONS } from "../src/cli/compose/schema-options.js";

const SCHEMA = fileURLToPath(new URL("../../data/compose-spec.json", import.meta.url));
export const COMPILED = fileURLToPath(
  new URL("../data/compose-spec.validate.cjs", import.meta.url),
);

const ajv = new Ajv({ ...COMPOSE_AJV_OPTIONS, code: { source: true } });
const validate = ajv.compile(JSON.parse(readFileSync(SCHEMA, "utf8")) as object);
mkdirSync(dirname(COMPILED), { recursive: true });
writeFileSync(COMPILED, standaloneCode.default(ajv, validate));
