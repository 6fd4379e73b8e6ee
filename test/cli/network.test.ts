// The network commands: `--network` parsing (short and long syntax), the create body, `network
// ls` rows and filters, `service inspect --pretty`'s Networks and Endpoint Mode lines, and the
// commands end to end against a stand-in API (create prints the id, rm prints each name and
// exits 1 when one failed, service update --network-add/--network-rm).

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  createSpec,
  parseNetworkAttachment,
  prettyService,
  updatedSpec,
} from "../../src/cli/service.js";
import {
  NETWORK_FILTERS,
  NETWORK_LS_FORMAT,
  createBody,
  networkRows,
} from "../../src/cli/network.js";
import { applyFilters, parseFilters } from "../../src/cli/filter.js";
import { renderRows } from "../../src/cli/template.js";
import { UsageError } from "../../src/cli/errors.js";
import { defaultServiceSpec } from "../../src/api/types.js";
import type { NetworkInspect } from "../../src/api/http.js";
import { fakeApi, shoal } from "./fake-api.js";

test("--network: NAME, NAME,alias=A, the long syntax; host and bridge stay network modes", () => {
  assert.deepEqual(parseNetworkAttachment("backend"), { target: "backend" });
  assert.deepEqual(parseNetworkAttachment("backend,alias=db,alias=cache"), {
    target: "backend",
    aliases: ["db", "cache"],
  });
  assert.deepEqual(parseNetworkAttachment("name=backend,alias=db"), {
    target: "backend",
    aliases: ["db"],
  });
  assert.deepEqual(parseNetworkAttachment("alias=db,target=x"), { target: "x", aliases: ["db"] });
  for (const bad of ["", "alias=db", "backend,other", "backend,driver-opt=x", "name="]) {
    assert.throws(() => parseNetworkAttachment(bad), UsageError, bad);
  }
  const spec = createSpec(
    { network: ["a,alias=x", "host", "b"], endpointMode: "dnsrr" },
    ["sleep", "1"],
    "web",
  );
  assert.equal(spec.network, "host");
  assert.deepEqual(spec.networks, [{ target: "a", aliases: ["x"] }, { target: "b" }]);
  assert.equal(spec.endpointMode, "dnsrr");
  assert.throws(() => createSpec({ endpointMode: "rr" }, ["x"], "web"), /vip or dnsrr/);
});

test("service update --network-add/--network-rm (by id)", () => {
  const cur = {
    ...defaultServiceSpec("web"),
    command: ["x"],
    networks: [{ target: "id-a" }, { target: "id-b", aliases: ["b"] }],
  };
  const next = updatedSpec(cur, { networkAdd: ["c,alias=z"], networkRm: ["id-a"] }, []);
  assert.deepEqual(next.networks, [
    { target: "id-b", aliases: ["b"] },
    { target: "c", aliases: ["z"] },
  ]);
  const none = updatedSpec(cur, { networkRm: ["id-a", "id-b"] }, []);
  assert.equal(none.networks, undefined);
  assert.deepEqual(updatedSpec(cur, {}, []).networks, cur.networks, "untouched without flags");
});

test("network create body: defaults and refusals", () => {
  assert.deepEqual(createBody("n", {}), {
    name: "n",
    driver: "overlay",
    attachable: false,
    internal: false,
    labels: {},
  });
  assert.deepEqual(
    createBody("n", {
      driver: "bridge",
      subnet: "10.9.0.0/24",
      gateway: "10.9.0.9",
      attachable: true,
      internal: true,
      label: ["a=b", "c=d"],
    }),
    {
      name: "n",
      driver: "bridge",
      subnet: "10.9.0.0/24",
      gateway: "10.9.0.9",
      attachable: true,
      internal: true,
      labels: { a: "b", c: "d" },
    },
  );
  assert.throws(() => createBody("n", { driver: "macvlan" }), /overlay or bridge/);
  assert.throws(() => createBody("n", { gateway: "10.0.0.1" }), /corresponding subnet/);
});

function net(id: string, name: string, driver: string, scope: string, labels = {}): NetworkInspect {
  return {
    Name: name,
    Id: id,
    Created: "2026-01-01T00:00:00.000Z",
    Scope: scope,
    Driver: driver,
    EnableIPv6: false,
    IPAM: { Driver: "default", Options: null, Config: [] },
    Internal: false,
    Attachable: false,
    Ingress: name === "ingress",
    ConfigFrom: { Network: "" },
    ConfigOnly: false,
    Containers: null,
    Options: null,
    Labels: labels,
  };
}

const NETS = [
  net("iiiiiiiiiiiiiiiiiiiiiiiii", "ingress", "overlay", "swarm"),
  net("bbbbbbbbbbbbbbbbbbbbbbbbb", "bridge", "bridge", "local"),
  net("hhhhhhhhhhhhhhhhhhhhhhhhh", "host", "host", "local"),
  net("xxxxxxxxxxxxxxxxxxxxxxxxx", "backend", "overlay", "swarm", { team: "a" }),
];

test("network ls: Docker's columns, sorted by name, filters, --no-trunc, -q ids", () => {
  const out = renderRows(networkRows(NETS), undefined, NETWORK_LS_FORMAT);
  assert.equal(
    out,
    [
      "NETWORK ID     NAME      DRIVER    SCOPE",
      "xxxxxxxxxxxx   backend   overlay   swarm",
      "bbbbbbbbbbbb   bridge    bridge    local",
      "hhhhhhhhhhhh   host      host      local",
      "iiiiiiiiiiii   ingress   overlay   swarm",
      "",
    ].join("\n"),
  );
  assert.equal(networkRows(NETS, { noTrunc: true })[0]!["ID"], "xxxxxxxxxxxxxxxxxxxxxxxxx");
  const pick = (f: string[]) =>
    applyFilters(NETS, parseFilters(f, NETWORK_FILTERS, "network ls"), NETWORK_FILTERS).map(
      (n) => n.Name,
    );
  assert.deepEqual(pick(["driver=overlay"]), ["ingress", "backend"]);
  assert.deepEqual(pick(["scope=local"]), ["bridge", "host"]);
  assert.deepEqual(pick(["name=ck"]), ["backend"]);
  assert.deepEqual(pick(["id=xxx"]), ["backend"]);
  assert.deepEqual(pick(["label=team=a"]), ["backend"]);
  assert.deepEqual(pick(["type=custom"]), ["backend"]);
  assert.deepEqual(pick(["driver=bridge", "driver=host"]), ["bridge", "host"]);
  assert.throws(() => pick(["scope=world"]), UsageError);
  assert.throws(() => pick(["color=red"]), /network ls filters by/);
  assert.equal(
    renderRows(networkRows(NETS), "{{.Name}}:{{.Driver}}", NETWORK_LS_FORMAT),
    "backend:overlay\nbridge:bridge\nhost:host\ningress:overlay\n",
  );
});

test("service inspect --pretty: Networks and Endpoint Mode as Docker prints them", () => {
  const spec = {
    ...defaultServiceSpec("web"),
    command: ["x"],
    networks: [{ target: "id-a" }, { target: "id-b" }],
  };
  const s = { id: "s", spec, version: 1, previousSpec: null, createdAt: 0, updatedAt: 0 };
  const text = prettyService({ ...s, running: 1, desired: 1 }, 0, new Map([["id-a", "backend"]]));
  assert.match(text, /\nNetworks: backend id-b \nEndpoint Mode:\tvip$/);
  const plain = prettyService(
    { ...s, spec: { ...spec, networks: undefined }, running: 1, desired: 1 } as never,
    0,
  );
  assert.doesNotMatch(plain, /Networks:|Endpoint Mode/);
});

test("network create/rm/inspect and service update --network-rm against the API", async (t) => {
  const api = await fakeApi((req) => {
    if (req.method === "POST" && req.path === "/v1/networks") return { json: { id: "newid" } };
    if (req.method === "DELETE" && req.path === "/v1/networks/backend") return { json: {} };
    if (req.method === "DELETE") {
      return {
        status: 409,
        json: { message: "network x is in use by service y", code: "ERR_CONFLICT" },
      };
    }
    if (req.method === "GET" && req.path === "/v1/networks/backend") {
      return { json: NETS[3] };
    }
    if (req.method === "GET" && req.path === "/v1/services/web") {
      const spec = {
        ...defaultServiceSpec("web"),
        command: ["x"],
        networks: [{ target: NETS[3]!.Id }],
      };
      return {
        json: { id: "s1", spec, version: 1, previousSpec: null, createdAt: 0, updatedAt: 0 },
      };
    }
    if (req.method === "POST" && req.path === "/v1/services/web/update") {
      return { json: { id: "s1", spec: (req.body as { spec: unknown }).spec } };
    }
    return undefined;
  });
  t.after(() => api.close());
  const c = await shoal(
    ["network", "create", "--subnet", "10.9.0.0/24", "--label", "a=b", "backend"],
    api.env,
  );
  assert.equal(c.code, 0, c.stderr);
  assert.equal(c.stdout, "newid\n");
  assert.deepEqual(api.requests.at(-1)!.body, {
    name: "backend",
    driver: "overlay",
    subnet: "10.9.0.0/24",
    attachable: false,
    internal: false,
    labels: { a: "b" },
  });
  const rm = await shoal(["network", "rm", "busy", "backend"], api.env);
  assert.equal(rm.code, 1);
  assert.equal(rm.stdout, "backend\n");
  assert.match(rm.stderr, /network x is in use by service y/);
  const ins = await shoal(
    ["network", "inspect", "--format", "{{.Name}} {{.Scope}}", "backend"],
    api.env,
  );
  assert.equal(ins.stdout, "backend swarm\n");
  const up = await shoal(["service", "update", "-d", "--network-rm", "backend", "web"], api.env);
  assert.equal(up.code, 0, up.stderr);
  const sent = api.requests.find((r) => r.path === "/v1/services/web/update")!.body as {
    spec: { networks?: unknown };
  };
  assert.equal(sent.spec.networks, undefined);
});

test("service inspect --pretty: the healthcheck as docker shows it", () => {
  const spec = {
    ...defaultServiceSpec("web"),
    command: ["sleep", "9"],
    healthcheck: {
      test: ["CMD-SHELL", "test -f ready"],
      intervalMs: 200,
      timeoutMs: 0,
      retries: 2,
      startPeriodMs: 60_000,
      startIntervalMs: 0,
    },
  };
  const text = prettyService(
    { id: "s1", version: 1, spec, createdAt: 0, updatedAt: 0, running: 1, desired: 1 } as never,
    0,
  );
  assert.match(
    text,
    /\n Command:\tsleep 9\n Healthcheck:\n {2}Interval = 200ms\n {2}Retries = 2\n {2}StartPeriod =\t1m0s\n {2}Timeout =\t0s\n {2}Tests:\n\t Test = CMD-SHELL\n\t Test = test -f ready(\n|$)/,
  );
});
