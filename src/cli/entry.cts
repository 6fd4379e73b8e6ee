// The `shoal` command's first module (bin/shoal.js requires it). It is CommonJS on purpose:
// `shoal nats-server` requires the message server's one-file CommonJS bundle, which
// `npm run build` makes with esbuild (package.json, bundle:nats-server), so a server never
// starts Node's ES module loader, which alone keeps 1.3 MiB resident at rest
// (docs/benchmarks.md, "RSS at rest"). Every other command, and `shoal nats-server` when a later
// `tsc` left the bundle stale, goes on to the compiled CLI, ES modules (main.ts).

import { statSync } from "node:fs";
import { join } from "node:path";

/** What the bundle exports (src/daemon/nats-server.ts). */
interface NatsServerBundle {
  natsServerMain(argv: string[]): Promise<number>;
}

/** Exits quietly when stdout or stderr is a pipe whose reader went away. */
function exitOnBrokenPipe(): void {
  for (const s of [process.stdout, process.stderr]) {
    if (s.listenerCount("error") > 0) continue;
    s.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EPIPE") process.exit(0);
      throw err;
    });
  }
}

/**
 * `nats-server.bundle.cjs` of `dir` when it is not older than the compiled `nats-server.js` it
 * was made of, else null (a later `tsc` rewrote the modules: the bundle would run old code).
 */
export function natsServerBundle(dir: string): string | null {
  const bundle = join(dir, "nats-server.bundle.cjs");
  try {
    if (statSync(bundle).mtimeMs >= statSync(join(dir, "nats-server.js")).mtimeMs) return bundle;
  } catch {
    // no bundle, or no compiled modules to compare it with
  }
  return null;
}

/** Runs `shoal ARGV...` and sets the exit code. */
export function run(argv: string[]): void {
  exitOnBrokenPipe();
  const bundle = argv[0] === "nats-server" ? natsServerBundle(join(__dirname, "../daemon")) : null;
  const code =
    bundle !== null
      ? // eslint-disable-next-line @typescript-eslint/no-require-imports -- CommonJS by design, see above
        (require(bundle) as NatsServerBundle).natsServerMain(argv.slice(1))
      : import("./main.js").then((m) => m.main(argv));
  code.then(
    (c) => {
      if (typeof c === "number") process.exitCode = c;
    },
    (err: unknown) => {
      console.error(`shoal: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 1;
    },
  );
}
