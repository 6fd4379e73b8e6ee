// The Ajv options the compose schema is compiled with — the same at build time
// (tools/compose-validator.ts) and at run time (load.ts), so both validators agree.

export const COMPOSE_AJV_OPTIONS = { strict: false, allErrors: true, validateSchema: false };
