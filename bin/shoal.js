#!/usr/bin/env node
// Entry point of the `shoal` command: runs the compiled CLI (built by `npm install` via
// `prepare`). CommonJS (bin/package.json), so that `shoal nats-server` never starts Node's ES
// module loader: see src/cli/entry.cts.
require("../dist/src/cli/entry.cjs").run(process.argv.slice(2));
