// The decisions about a manager demoted while it is down (src/daemon/demoted-member.ts): which
// etcd members the leader takes out, what a manager whose member was removed does when it starts
// again, and the other managers' client URLs it keeps for that (etcd-peers.json).

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  membersToRemove,
  notePeers,
  peerUrls,
  readPeers,
  removedMemberVerdict,
} from "../../src/daemon/demoted-member.js";
import type { Node } from "../../src/api/types.js";

type N = Pick<Node, "id" | "role" | "status">;

/** Each node's address in the table: one per id. */
const addrOf = (id: string) => `10.0.1.${id.charCodeAt(0)}`;

test("membersToRemove: the members of demoted nodes that are down, nothing else", () => {
  // A member is its name, or "?x" for one added and never started (no name) at node x's peer URL.
  const cases: { name: string; members: string[]; nodes: N[]; want: string[] }[] = [
    {
      name: "a demoted manager that is down",
      members: ["a", "b", "c"],
      nodes: [
        { id: "a", role: "manager", status: "ready" },
        { id: "b", role: "manager", status: "ready" },
        { id: "c", role: "worker", status: "down" },
      ],
      want: ["c"],
    },
    {
      name: "a demoted manager that is up removes its own member",
      members: ["a", "b", "c"],
      nodes: [
        { id: "a", role: "manager", status: "ready" },
        { id: "b", role: "manager", status: "ready" },
        { id: "c", role: "worker", status: "ready" },
      ],
      want: [],
    },
    {
      name: "a manager that is down keeps its member",
      members: ["a", "b", "c"],
      nodes: [
        { id: "a", role: "manager", status: "ready" },
        { id: "b", role: "manager", status: "ready" },
        { id: "c", role: "manager", status: "down" },
      ],
      want: [],
    },
    {
      name: "a member added but not started (no name) for a manager, or of no node, is left alone",
      members: ["a", "b", "?c", "?z", "gone"],
      nodes: [
        { id: "a", role: "manager", status: "ready" },
        { id: "b", role: "manager", status: "ready" },
        { id: "c", role: "manager", status: "down" },
      ],
      want: [],
    },
    {
      name: "a member never started for a node demoted while down goes (its daemon never ran)",
      members: ["a", "?c", "?d"],
      nodes: [
        { id: "a", role: "manager", status: "ready" },
        { id: "c", role: "worker", status: "down" },
        { id: "d", role: "worker", status: "ready" },
      ],
      want: ["?c"],
    },
    {
      name: "a worker that never was a manager has no member: nothing",
      members: ["a", "b", "c"],
      nodes: [
        { id: "a", role: "manager", status: "ready" },
        { id: "b", role: "manager", status: "ready" },
        { id: "c", role: "manager", status: "ready" },
        { id: "w", role: "worker", status: "down" },
      ],
      want: [],
    },
    {
      name: "two demoted while down",
      members: ["a", "b", "c", "d", "e"],
      nodes: [
        { id: "a", role: "manager", status: "ready" },
        { id: "b", role: "manager", status: "ready" },
        { id: "c", role: "manager", status: "ready" },
        { id: "d", role: "worker", status: "down" },
        { id: "e", role: "worker", status: "down" },
      ],
      want: ["d", "e"],
    },
  ];
  for (const c of cases) {
    assert.deepEqual(
      membersToRemove(
        c.members.map((m) =>
          m.startsWith("?")
            ? { name: "", peerURLs: [`https://${addrOf(m.slice(1))}:4380`], label: m }
            : { name: m, peerURLs: [`https://${addrOf(m)}:4380`], label: m },
        ),
        c.nodes.map((n) => ({ ...n, addr: addrOf(n.id) })),
      ).map((m) => m.label),
      c.want,
      c.name,
    );
  }
});

test("removedMemberVerdict: a worker with its node secret comes back as a worker; else why not", () => {
  const cases: {
    name: string;
    node: Pick<Node, "role"> | undefined;
    secret: string | undefined;
    worker: boolean;
    reason?: RegExp;
  }[] = [
    { name: "demoted", node: { role: "worker" }, secret: "s3cret", worker: true },
    {
      name: "still a manager (its member removed by hand)",
      node: { role: "manager" },
      secret: undefined,
      worker: false,
      reason: /node n1 is still a manager in the swarm: demote it \(shoal node demote n1/,
    },
    {
      name: "removed from the swarm",
      node: undefined,
      secret: "s3cret",
      worker: false,
      reason: /node n1 is no longer in the swarm .*shoal swarm leave --force/,
    },
    {
      name: "a worker without a node secret",
      node: { role: "worker" },
      secret: undefined,
      worker: false,
      reason: /no node secret .*shoal node rm n1/,
    },
  ];
  for (const c of cases) {
    const v = removedMemberVerdict("n1", c.node, c.secret);
    assert.equal(v.worker, c.worker, c.name);
    if (!v.worker) assert.match(v.reason, c.reason!, c.name);
  }
});

test("peerUrls: the other managers' client URLs (IPv6 bracketed), sorted", () => {
  const nodes: Pick<Node, "id" | "role" | "addr">[] = [
    { id: "me", role: "manager", addr: "10.0.0.1" },
    { id: "m2", role: "manager", addr: "10.0.0.3" },
    { id: "m3", role: "manager", addr: "fd00::2" },
    { id: "w1", role: "worker", addr: "10.0.0.9" },
  ];
  assert.deepEqual(peerUrls(nodes, "me"), ["https://10.0.0.3:4379", "https://[fd00::2]:4379"]);
});

test("notePeers writes etcd-peers.json (0600) only when the list changed; readPeers reads it", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "shoal-peers-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  assert.deepEqual(readPeers(dir), [], "none noted yet");
  const urls = ["https://10.0.0.2:4379", "https://10.0.0.3:4379"];
  assert.equal(notePeers(dir, urls), true);
  assert.deepEqual(readPeers(dir), urls);
  assert.equal(statSync(join(dir, "etcd-peers.json")).mode & 0o777, 0o600);
  assert.equal(notePeers(dir, urls), false, "unchanged: not written again");
  assert.equal(notePeers(dir, urls.slice(1)), true);
  assert.deepEqual(readPeers(dir), urls.slice(1));
  writeFileSync(join(dir, "etcd-peers.json"), "{not json");
  assert.deepEqual(readPeers(dir), [], "a damaged note reads as none");
  assert.match(readFileSync(join(dir, "etcd-peers.json"), "utf8"), /not json/);
});
