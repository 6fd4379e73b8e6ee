import { builtinModules } from "node:module";
import { dirname, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const ROOT = dirname(fileURLToPath(import.meta.url));

// The layer table of docs/design.md: what each folder of src/ may import besides itself. A
// folder imports only from folders below it; manager, node, net and store import nothing of each
// other except manager → store; lib imports nothing of ours (node builtins only).
const LAYERS = {
  cli: ["daemon", "api", "lib"],
  daemon: ["manager", "node", "net", "store", "api", "nats", "lib"],
  manager: ["store", "api", "nats", "lib"],
  node: ["api", "lib"],
  net: ["api", "lib"],
  store: ["api", "lib"],
  api: ["lib"],
  nats: ["lib"],
  lib: [],
};
// Imports a folder may make only with a dynamic import(), so a command loads only what it needs.
// Type-only imports load nothing and are allowed.
const LAZY = { cli: ["daemon"] };
const BUILTINS = new Set(builtinModules);
const TABLE = "the layer table in docs/design.md";

/** The src/ folder a path lies in ("" when outside src/), and its path from the repository. */
function place(path) {
  const rel = relative(ROOT, path).split(sep).join("/");
  const m = /^src\/([^/]+)\//.exec(rel);
  return { layer: m ? m[1] : "", rel };
}

const layers = {
  meta: {
    type: "problem",
    docs: { description: `Enforces ${TABLE}: a folder of src/ imports only the folders below it` },
    schema: [],
  },
  create(context) {
    const here = place(context.filename);
    const from = here.layer;
    if (!here.rel.startsWith("src/")) return {};
    if (!Object.hasOwn(LAYERS, from)) {
      const message =
        from === ""
          ? `${here.rel} lies in no layer: every file of src/ belongs in a folder of ${TABLE}`
          : `src/${from}/ is not in ${TABLE}; add it there and in eslint.config.js`;
      return { Program: (node) => context.report({ node, message }) };
    }
    const allowed = LAYERS[from];
    const lazy = LAZY[from] ?? [];

    /** Checks one import of `source` (a string literal node); kind: static | dynamic | type. */
    function check(node, source, kind) {
      if (source == null) return;
      let spec;
      if (source.type === "Literal" && typeof source.value === "string") spec = source.value;
      else if (source.type === "TemplateLiteral" && source.expressions.length === 0) {
        spec = source.quasis[0].value.cooked;
      } else {
        context.report({
          node,
          message: `src/${from}/: an import() of a computed path cannot be checked against ${TABLE}; import a literal path`,
        });
        return;
      }
      if (!spec.startsWith(".") && !spec.startsWith("/")) {
        if (from === "lib" && !spec.startsWith("node:") && !BUILTINS.has(spec)) {
          context.report({
            node,
            message: `src/lib/ imports node builtins only, not "${spec}" (${TABLE})`,
          });
        }
        return;
      }
      const target = place(resolve(dirname(context.filename), spec));
      if (target.layer === from) return;
      if (target.layer === "") {
        context.report({
          node,
          message: `src/${from}/ may not import "${spec}" (${target.rel}): src/ imports only src/ (${TABLE})`,
        });
        return;
      }
      if (!Object.hasOwn(LAYERS, target.layer)) {
        context.report({
          node,
          message: `src/${target.layer}/ is not in ${TABLE}; add it there and in eslint.config.js`,
        });
        return;
      }
      if (lazy.includes(target.layer)) {
        if (kind === "static") {
          context.report({
            node,
            message: `src/${from}/ may import src/${target.layer}/ only with a dynamic import() (${TABLE}: ${from} loads ${target.layer} lazily)`,
          });
        }
        return;
      }
      if (!allowed.includes(target.layer)) {
        const may = allowed.length
          ? allowed.map((l) => (lazy.includes(l) ? `${l} (lazily)` : l)).join(", ")
          : "nothing of ours (node builtins only)";
        context.report({
          node,
          message: `src/${from}/ may not import src/${target.layer}/ (${TABLE}: ${from} may import ${may})`,
        });
      }
    }

    const typeOnly = (node) =>
      node.importKind === "type" ||
      node.exportKind === "type" ||
      (node.specifiers?.length > 0 &&
        node.specifiers.every((s) => s.importKind === "type" || s.exportKind === "type"));

    return {
      ImportDeclaration: (node) => check(node, node.source, typeOnly(node) ? "type" : "static"),
      ExportNamedDeclaration: (node) =>
        check(node, node.source, typeOnly(node) ? "type" : "static"),
      ExportAllDeclaration: (node) => check(node, node.source, typeOnly(node) ? "type" : "static"),
      ImportExpression: (node) => check(node, node.source, "dynamic"),
      TSImportType: (node) => check(node, node.argument?.literal ?? node.argument, "type"),
      TSExternalModuleReference: (node) => check(node, node.expression, "static"),
    };
  },
};

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "web/dist/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_" },
      ],
      "no-constant-condition": ["error", { checkLoops: false }],
    },
  },
  {
    files: ["src/**/*.ts", "src/**/*.cts"],
    plugins: { shoal: { rules: { layers } } },
    rules: { "shoal/layers": "error" },
  },
  {
    // CommonJS (bin/package.json): see src/cli/entry.cts.
    files: ["bin/**/*.js"],
    languageOptions: {
      sourceType: "commonjs",
      globals: { process: "readonly", require: "readonly" },
    },
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
  {
    // The examples are Node.js programs users run as tasks.
    files: ["examples/**/*.mjs"],
    languageOptions: {
      globals: {
        process: "readonly",
        console: "readonly",
        URL: "readonly",
        URLSearchParams: "readonly",
      },
    },
  },
);
