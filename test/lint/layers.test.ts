// The layer table of docs/design.md is enforced by the `shoal/layers` rule in eslint.config.js:
// these cases lint source text as if it lived in a folder of src/ (through ESLint's API and the
// repository's own config), so removing or weakening the rule fails here, not only in review.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ESLint } from "eslint";
import { ROOT } from "../helpers/servers.js";

const eslint = new ESLint({ cwd: ROOT });

/** The layer-rule messages for `code` placed at `file` (a path under the repository). */
async function layerErrors(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: `${ROOT}/${file}` });
  assert.ok(result, `no lint result for ${file}`);
  assert.deepEqual(
    result.messages.filter((m) => m.fatal),
    [],
    `${file} did not parse: ${JSON.stringify(result.messages)}`,
  );
  return result.messages.filter((m) => m.ruleId === "shoal/layers").map((m) => m.message);
}

interface Case {
  name: string;
  file: string;
  code: string;
  /** A part of the expected message, or null when the import is allowed. */
  error: string | null;
}

const CASES: Case[] = [
  // upward
  {
    name: "nats may not import manager",
    file: "src/nats/x.ts",
    code: 'import { Manager } from "../manager/manager.js";\nexport const m = Manager;\n',
    error: "src/nats/ may not import src/manager/ (the layer table in docs/design.md",
  },
  {
    name: "api may not import store",
    file: "src/api/x.ts",
    code: 'export { memoryStore } from "../store/memory.js";\n',
    error: "src/api/ may not import src/store/",
  },
  {
    name: "manager may not import daemon, even lazily",
    file: "src/manager/x.ts",
    code: 'export const d = () => import("../daemon/run.js");\n',
    error: "src/manager/ may not import src/daemon/",
  },
  {
    name: "a type-only import counts",
    file: "src/store/x.ts",
    code: 'import type { Manager } from "../manager/manager.js";\nexport type M = Manager;\n',
    error: "src/store/ may not import src/manager/",
  },
  {
    name: "a type-level import() counts",
    file: "src/nats/x.ts",
    code: 'export type T = import("../api/types.js").Task;\n',
    error: "src/nats/ may not import src/api/",
  },
  {
    name: "export * counts",
    file: "src/lib/x.ts",
    code: 'export * from "../nats/server.js";\n',
    error:
      "src/lib/ may not import src/nats/ (the layer table in docs/design.md: lib may import nothing of ours",
  },
  {
    name: "a subfolder is its folder's layer",
    file: "src/manager/orchestrator/x.ts",
    code: 'import { Agent } from "../../node/agent.js";\nexport const a = Agent;\n',
    error: "src/manager/ may not import src/node/",
  },
  // sideways
  {
    name: "node may not import store",
    file: "src/node/x.ts",
    code: 'import { EmbeddedStore } from "../store/embedded.js";\nexport const s = EmbeddedStore;\n',
    error: "src/node/ may not import src/store/",
  },
  {
    name: "store may not import net",
    file: "src/store/x.ts",
    code: 'import "../net/mesh.js";\n',
    error: "src/store/ may not import src/net/",
  },
  {
    name: "node may not import nats",
    file: "src/node/drivers/x.ts",
    code: 'import { Server } from "../../nats/server.js";\nexport const s = Server;\n',
    error: "src/node/ may not import src/nats/",
  },
  // the CLI loads the daemon lazily
  {
    name: "cli may not import daemon statically",
    file: "src/cli/x.ts",
    code: 'import { runDaemon } from "../daemon/run.js";\nexport const r = runDaemon;\n',
    error: "src/cli/ may import src/daemon/ only with a dynamic import()",
  },
  {
    name: "cli may import daemon with import()",
    file: "src/cli/x.ts",
    code: 'export const r = async () => (await import("../daemon/run.js")).runDaemon;\n',
    error: null,
  },
  {
    name: "cli may import daemon types",
    file: "src/cli/x.ts",
    code: 'import type { DaemonRunOptions } from "../daemon/run.js";\nexport type O = DaemonRunOptions;\n',
    error: null,
  },
  {
    name: "cli may not import manager",
    file: "src/cli/x.ts",
    code: 'import { parseToken } from "../manager/ids.js";\nexport const p = parseToken;\n',
    error: "src/cli/ may not import src/manager/",
  },
  // lib: node builtins only
  {
    name: "lib may not import a package",
    file: "src/lib/x.ts",
    code: 'import { connect } from "nats";\nexport const c = connect;\n',
    error: 'src/lib/ imports node builtins only, not "nats"',
  },
  {
    name: "lib may import node builtins",
    file: "src/lib/x.ts",
    code: 'import { readFileSync } from "node:fs";\nimport os from "os";\nexport const r = [readFileSync, os];\n',
    error: null,
  },
  // what the table allows
  {
    name: "manager may import store, api, nats and lib",
    file: "src/manager/x.ts",
    code:
      'import type { Store } from "../store/store.js";\nimport type { Task } from "../api/types.js";\n' +
      'import type { Options } from "../nats/options.js";\nimport { SHOAL_VERSION } from "../lib/version.js";\n' +
      "export type T = [Store, Task, Options];\nexport const v = SHOAL_VERSION;\n",
    error: null,
  },
  {
    name: "daemon may import every layer below it",
    file: "src/daemon/x.ts",
    code:
      'import "../manager/manager.js";\nimport "../node/agent.js";\nimport "../net/mesh.js";\n' +
      'import "../store/embedded.js";\nimport "../api/types.js";\nimport "../nats/server.js";\nimport "../lib/log.js";\n',
    error: null,
  },
  {
    name: "a folder imports itself",
    file: "src/nats/x.ts",
    code: 'import { Server } from "./server.js";\nexport const s = Server;\n',
    error: null,
  },
  // outside the table
  {
    name: "src may not import tests",
    file: "src/nats/x.ts",
    code: 'import { checkFor } from "../../test/helpers/servers.js";\nexport const c = checkFor;\n',
    error: "src/ imports only src/",
  },
  {
    name: "a file outside every folder",
    file: "src/x.ts",
    code: "export const x = 1;\n",
    error: "src/x.ts lies in no layer",
  },
  {
    name: "a folder missing from the table",
    file: "src/web/x.ts",
    code: 'import "../lib/log.js";\nexport const x = 1;\n',
    error: "src/web/ is not in the layer table in docs/design.md",
  },
];

describe("lint: the layer table (shoal/layers in eslint.config.js)", () => {
  for (const c of CASES) {
    test(c.name, async () => {
      const errors = await layerErrors(c.file, c.code);
      if (c.error === null) assert.deepEqual(errors, [], `${c.file} should be allowed`);
      else {
        assert.ok(
          errors.length > 0 && errors.every((e) => e.includes(c.error!)),
          `expected "${c.error}" for ${c.file}, got ${JSON.stringify(errors)}`,
        );
      }
    });
  }

  test("the rule is on for every file of src/", async () => {
    const config = (await eslint.calculateConfigForFile(`${ROOT}/src/lib/addr.ts`)) as {
      rules?: Record<string, unknown>;
    };
    assert.deepEqual(config.rules?.["shoal/layers"], [2]);
  });
});
