#!/usr/bin/env node
// Entry point of the `shoal` command: runs the compiled CLI (built by `npm install` via `prepare`).
import { main } from "../dist/src/cli/main.js";

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === "number") process.exitCode = code;
  },
  (err) => {
    console.error(`shoal: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
