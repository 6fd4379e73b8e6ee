// Swarm's checks of a spec's mounts and user before the manager stores it: absolute targets
// given once, a bind's absolute source, a volume's name (never a path), an empty tmpfs source,
// and the user's form. A spec without them (as older versions stored) stays valid.

import { test } from "node:test";
import assert from "node:assert/strict";
import { specProblems } from "../../src/manager/validate.js";
import { defaultServiceSpec, type Mount, type ServiceSpec } from "../../src/api/types.js";

const spec = (over: Partial<ServiceSpec>): ServiceSpec => ({
  ...defaultServiceSpec("web"),
  command: ["run"],
  ...over,
});
const m = (type: Mount["type"], source: string, target: string): Mount => ({
  type,
  source,
  target,
  readOnly: false,
});

test("mounts and user: each problem named; good ones pass", () => {
  assert.deepEqual(specProblems(spec({})), []);
  assert.deepEqual(
    specProblems(
      spec({
        user: "1000:1000",
        mounts: [
          m("bind", "/a", "/a"),
          m("volume", "data", "/d"),
          m("volume", "", "/anon"),
          m("tmpfs", "", "/t"),
        ],
      }),
    ),
    [],
  );
  const cases: Array<[Partial<ServiceSpec>, string]> = [
    [{ mounts: [m("bind", "/a", "rel")] }, "invalid mount target, must be an absolute path: rel"],
    [{ mounts: [m("bind", "/a", "/x"), m("tmpfs", "", "/x")] }, "duplicate mount point: /x"],
    [{ mounts: [m("bind", "a", "/x")] }, "invalid bind mount source, must be an absolute path: a"],
    [
      { mounts: [m("volume", "/a", "/x")] },
      "invalid volume mount source, must not be an absolute path: /a",
    ],
    [
      { mounts: [m("volume", "../up", "/x")] },
      '"../up" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path',
    ],
    [{ mounts: [m("tmpfs", "x", "/x")] }, "invalid tmpfs source, source must be empty"],
    [
      { mounts: [{ ...m("bind", "/a", "/x"), type: "npipe" as Mount["type"] }] },
      "spec.mounts[0].type must be one of bind, volume, tmpfs",
    ],
    [{ user: "a:b:c" }, 'spec.user must be "user" or "user:group" (a name or a number each)'],
    [{ user: "" }, 'spec.user must be "user" or "user:group" (a name or a number each)'],
  ];
  for (const [over, want] of cases) {
    assert.deepEqual(specProblems(spec(over)), [want], JSON.stringify(over));
  }
});
