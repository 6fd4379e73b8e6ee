// The managed etcd members follow a root CA rotation (src/daemon/member-trust.ts). The decisions
// as tables: what a member's CA file holds at each step of a rotation, when a member restarts,
// when a manager may take a certificate from the new root, what it reports it trusts, and when
// it may restart its member. Then with real etcd members (three, on 127.0.0.1): a MemberTrust
// restarts its member once the roots wanted change, but not while another manager holds the
// restart lock nor while another member is down, and lets the lock go afterwards.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import {
  MEMBER_RESTART_LOCK,
  MemberTrust,
  mayTakeCertFrom,
  memberNeedsRestart,
  reportedTrustRoots,
  restartVerdict,
  type MemberHealth,
} from "../../src/daemon/member-trust.js";
import { EtcdMember, addEtcdMember } from "../../src/daemon/etcd-member.js";
import {
  caDigest,
  certPaths,
  createRootCa,
  joinPem,
  rotateRootCa,
  trustPem,
  type CaMeta,
} from "../../src/manager/ca.js";
import { etcdClient } from "../../src/store/etcd.js";
import { silentLogger, type Logger } from "../../src/lib/log.js";
import { defer } from "../helpers/defer.js";
import { memberOpts, startMember } from "../helpers/etcd-member.js";
import { etcdSkip } from "../helpers/etcd.js";
import { checkFor } from "../helpers/servers.js";

/** A rotation's three CA metas: before (root A), during (B signs, A trusted), after (B). */
async function phases(): Promise<{ before: CaMeta; during: CaMeta; after: CaMeta }> {
  const before = await createRootCa(new Date());
  const during = await rotateRootCa(before, new Date());
  const { rotation: _gone, ...after } = during;
  return { before, during, after };
}

describe("what a member's CA file holds, and when it restarts", () => {
  test("the CA file holds the roots the swarm trusts at each step of a rotation", async () => {
    const { before, during, after } = await phases();
    const [a, b] = [caDigest(before.certPem), caDigest(after.certPem)];
    const digests = (ca: CaMeta) =>
      trustPem(ca)
        .match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g)!
        .map(caDigest);
    assert.deepEqual(digests(before), [a]);
    assert.deepEqual(digests(during), [b, a]);
    assert.deepEqual(digests(after), [b]);
  });

  test("a member restarts when it trusts other roots than the swarm, in any order", async () => {
    const { before, during, after } = await phases();
    const A = before.certPem;
    const B = after.certPem;
    const rows: Array<[string, string, CaMeta, boolean]> = [
      ["started on A, before the rotation", A, before, false],
      ["started on A, the rotation began", A, during, true],
      ["started on B+A, during", joinPem(B, A), during, false],
      ["started on A+B (another order), during", joinPem(A, B), during, false],
      ["started on B+A, the old root dropped", joinPem(B, A), after, true],
      ["started on B, after", B, after, false],
      ["started on A twice, before", joinPem(A, A), before, false],
      ["a CA file it could not read", "", during, true],
    ];
    for (const [name, loaded, ca, want] of rows) {
      assert.equal(memberNeedsRestart(loaded, trustPem(ca)), want, name);
    }
  });

  test("a manager takes a certificate from the signing root only once its member trusts it", async () => {
    const { before, after } = await phases();
    const A = before.certPem;
    const B = after.certPem;
    const rows: Array<[string, string, string | undefined, boolean]> = [
      ["no managed member", B, undefined, true],
      ["the member trusts the old root only", B, A, false],
      ["the member trusts both", B, joinPem(B, A), true],
      ["the member trusts the new root", B, B, true],
      ["no rotation: the member trusts the root", A, A, true],
    ];
    for (const [name, signing, member, want] of rows) {
      assert.equal(mayTakeCertFrom(signing, member), want, name);
    }
  });

  test("a manager reports the roots its listeners trust, then those its member still trusts", async () => {
    const { before, after } = await phases();
    const [a, b] = [caDigest(before.certPem), caDigest(after.certPem)];
    const rows: Array<[string, string[], string | undefined, string[]]> = [
      ["no managed member", [b], undefined, [b]],
      ["the member trusts the same", [b], after.certPem, [b]],
      ["the member still trusts the old root", [b], joinPem(after.certPem, before.certPem), [b, a]],
      ["the member has not restarted yet", [b, a], before.certPem, [b, a]],
    ];
    for (const [name, own, member, want] of rows) {
      assert.deepEqual(reportedTrustRoots(own, member), want, name);
    }
  });

  test("a manager restarts its member only while every other member is healthy", () => {
    const m = (name: string, healthy: boolean): MemberHealth => ({ name, healthy });
    const rows: Array<[string, MemberHealth[], string | null]> = [
      ["all healthy", [m("a", true), m("b", true), m("c", true)], null],
      ["its own member unhealthy (the restart may fix it)", [m("a", false), m("b", true)], null],
      ["alone", [m("a", true)], null],
      ["another down", [m("a", true), m("b", false), m("c", true)], "b"],
      ["two others down", [m("a", true), m("b", false), m("c", false)], "b, c"],
      ["an added member not started", [m("a", true), m("", false)], "(added, not started)"],
      ["not a member", [m("b", true), m("c", true)], "not an etcd member"],
    ];
    for (const [name, members, waitFor] of rows) {
      const v = restartVerdict(members, "a");
      if (waitFor === null) assert.deepEqual(v, { go: true }, name);
      else {
        assert.equal(v.go, false, name);
        assert.ok(!v.go && v.reason.includes(waitFor), `${name}: ${JSON.stringify(v)}`);
      }
    }
  });
});

/** A logger that keeps its lines. */
function recording(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log: Logger & { lines: string[] } = {
    ...silentLogger,
    lines,
    info: (msg) => lines.push(msg),
    warn: (msg) => lines.push(msg),
    child: () => log,
  };
  return log;
}

describe("a MemberTrust with real etcd members", { skip: etcdSkip() }, () => {
  test("restarts its member for new roots, one member at a time, and lets the lock go", async (t) => {
    const opts = [await memberOpts(t, "mt1")];
    const m1 = await startMember(t, opts[0]!, { mode: "new" });
    const c1 = etcdClient({ endpoints: [m1.clientUrl], tls: m1.clientTls() });
    defer(t, () => c1.close());
    const members = [m1];
    for (const id of ["mt2", "mt3"]) {
      const o = await memberOpts(t, id);
      const joined = await addEtcdMember(c1, id, `https://127.0.0.1:${o.peerPort}`);
      members.push(await startMember(t, o, { mode: "join", ...joined }));
      opts.push(o);
    }
    const [, m2, m3] = members as [EtcdMember, EtcdMember, EtcdMember];

    // The swarm now trusts another root besides the test CA: mt1's CA file holds both.
    const other = await createRootCa(new Date());
    const caFile = certPaths(opts[0]!.dataDir).ca;
    const wanted = joinPem(other.certPem, readFileSync(caFile, "utf8"));
    writeFileSync(caFile, wanted);
    assert.ok(memberNeedsRestart(m1.trustedPem, wanted));
    const log = recording();
    const trust = new MemberTrust({
      member: m1,
      nodeId: "mt1",
      wanted: () => readFileSync(caFile, "utf8"),
      endpoints: () => members.map((m) => m.clientUrl),
      tls: () => m1.clientTls(),
      log,
      retryMs: 100,
    });
    defer(t, () => trust.stop());
    const pid = m1.pid;

    // Another manager holds the restart lock: mt1 waits.
    const c2 = etcdClient({ endpoints: [m2.clientUrl], tls: m2.clientTls() });
    defer(t, () => c2.close());
    const held = await c2.lock(MEMBER_RESTART_LOCK).ttl(30).acquire();
    const settled = trust.settle();
    await checkFor(20_000, () => log.lines.some((l) => /another manager's etcd member/.test(l)));
    assert.equal(m1.pid, pid, "not restarted while the lock is held");

    // The lock goes, but mt3's member is down: mt1 still waits, naming it.
    await m3.stop();
    await held.release();
    await checkFor(20_000, () => log.lines.some((l) => /members mt3 to be healthy/.test(l)));
    assert.equal(m1.pid, pid, "not restarted while another member is down");

    // mt3 back: mt1's member restarts on the CA file, and the lock is free again.
    members[2] = await startMember(t, opts[2]!, { mode: "restart" });
    await settled;
    assert.notEqual(m1.pid, pid);
    assert.equal(m1.trustedPem, wanted);
    assert.equal(memberNeedsRestart(m1.trustedPem, wanted), false);
    const again = await c2.lock(MEMBER_RESTART_LOCK).ttl(5).acquire();
    await again.release();

    // Nothing to do: a settle does not restart it again.
    const now = m1.pid;
    await trust.settle();
    assert.equal(m1.pid, now);
  });
});
