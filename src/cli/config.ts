// `shoal config create|ls|inspect|rm`: the swarm's configs. They share their code with secrets
// (secret.ts); a config differs in its `ls` columns (no DRIVER) and in that inspect shows its data.

import { create, inspect, ls, rm } from "./secret.js";
import type { ListOptions } from "./service.js";

export const createConfig = (name: string, file: string, o: { label?: string[] }) =>
  create("config", name, file, o);
export const lsConfigs = (o: ListOptions) => ls("config", o);
export const inspectConfigs = (refs: string[], o: { pretty?: boolean }) =>
  inspect("config", refs, o);
export const rmConfigs = (refs: string[]) => rm("config", refs);
