// The one-file bundle of nats-server.ts that `npm run build` makes with esbuild (package.json,
// bundle:nats-server): the same exports. src/cli/main.ts loads it when it is up to date.
export * from "./nats-server.js";
