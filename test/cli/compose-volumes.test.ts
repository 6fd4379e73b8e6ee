// Compose `volumes:` and `user:` as service mounts and users, by `docker stack deploy`'s rules:
// short and long syntax, binds relative to the compose file's directory, named volumes scoped to
// the stack unless external or named, and the errors that name the place.

import { test } from "node:test";
import assert from "node:assert/strict";
import { homedir } from "node:os";
import { join } from "node:path";
import { loadSources } from "../../src/cli/compose/load.js";
import { convertStack } from "../../src/cli/compose/convert.js";

const load = (text: string) => loadSources([{ file: "stack.yml", text }], () => undefined);
const ctx = { workingDir: "/srv/app", lookup: () => undefined, readFile: () => "" };

test("volumes: short and long syntax, binds, named, external and anonymous volumes; user", () => {
  const s = convertStack(
    load(`services:
  web:
    command: [run]
    user: "1000:1000"
    volumes:
      - ./data:/data:ro
      - /abs:/x
      - cache:/cache
      - shared:/shared:rw
      - /anon
      - ~/conf:/conf
      - type: bind
        source: ../logs
        target: /logs
        read_only: true
      - type: volume
        source: named
        target: /named
      - type: tmpfs
        target: /tmp/t
volumes:
  cache: {}
  shared: {external: true}
  named: {name: my-volume}
`),
    "st",
    ctx,
  );
  const web = s.services[0]!;
  assert.equal(web.user, "1000:1000");
  assert.deepEqual(web.mounts, [
    { type: "bind", source: "/srv/app/data", target: "/data", readOnly: true },
    { type: "bind", source: "/abs", target: "/x", readOnly: false },
    { type: "volume", source: "st_cache", target: "/cache", readOnly: false },
    { type: "volume", source: "shared", target: "/shared", readOnly: false },
    { type: "volume", source: "", target: "/anon", readOnly: false },
    { type: "bind", source: join(homedir(), "conf"), target: "/conf", readOnly: false },
    { type: "bind", source: "/srv/logs", target: "/logs", readOnly: true },
    { type: "volume", source: "my-volume", target: "/named", readOnly: false },
    { type: "tmpfs", source: "", target: "/tmp/t", readOnly: false },
  ]);
  // No longer among the keys shoal warns it ignores.
  assert.deepEqual(s.warnings, []);
  // A service without volumes or user has neither.
  const plain = convertStack(load("services:\n  a:\n    command: x\n"), "st", ctx).services[0]!;
  assert.equal(plain.mounts, undefined);
  assert.equal(plain.user, undefined);
});

test("volumes: errors name the place", () => {
  const table: Array<[string, string]> = [
    [
      "services:\n  a:\n    command: x\n    volumes: [nope:/x]\n",
      'services.a.volumes[0]: undefined volume "nope"',
    ],
    [
      "services:\n  a:\n    command: x\n    volumes: ['./d:rel']\n",
      "services.a.volumes[0]: invalid mount target, must be an absolute path: rel",
    ],
    [
      "services:\n  a:\n    command: x\n    volumes: [{type: bind, target: /x}]\n",
      "services.a.volumes[0]: invalid bind source, source cannot be empty",
    ],
    [
      "services:\n  a:\n    command: x\n    volumes: [{type: tmpfs, source: t, target: /x}]\n",
      "services.a.volumes[0]: invalid tmpfs source, source must be empty",
    ],
    [
      "services:\n  a:\n    command: x\n    volumes: [v:/x]\nvolumes:\n  v: {driver: nfs}\n",
      'volumes.v.driver: volume driver "nfs" is not supported (local volumes only)',
    ],
  ];
  for (const [text, message] of table) {
    assert.throws(() => convertStack(load(text), "st", ctx), { message }, text);
  }
});
