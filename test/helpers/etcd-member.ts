// Managed etcd members (src/daemon/etcd-member.ts) on loopback for the daemon tests: a node's
// data dir with a certificate from the test CA, a member's options on free ports, a member
// started and stopped with the test.

import type { TestContext } from "node:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  EtcdMember,
  type EtcdMemberOptions,
  type EtcdStart,
} from "../../src/daemon/etcd-member.js";
import { issueNodeCert, newKeyAndCsr, writeNodeCerts } from "../../src/manager/ca.js";
import { defer } from "./defer.js";
import { freePort } from "./cluster.js";
import { testCa } from "./pki.js";

/** A node data dir with a certificate for 127.0.0.1 from the test CA (a manager's by default). */
export async function nodeDir(
  t: TestContext,
  nodeId: string,
  role: "manager" | "worker" = "manager",
): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), `shoal-etcd-member-${nodeId}-`));
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  const ca = await testCa();
  const { keyPem, csrPem } = await newKeyAndCsr();
  const certPem = await issueNodeCert(ca, csrPem, {
    nodeId,
    role,
    addrs: ["127.0.0.1"],
    now: new Date(),
  });
  await writeNodeCerts(dir, { caPem: ca.certPem, certPem, keyPem });
  return dir;
}

/** A member's options: its own data dir, free client and peer ports on 127.0.0.1. */
export async function memberOpts(
  t: TestContext,
  nodeId: string,
  extra: Partial<EtcdMemberOptions> = {},
): Promise<EtcdMemberOptions> {
  return {
    nodeId,
    dataDir: await nodeDir(t, nodeId),
    addr: "127.0.0.1",
    clientPort: await freePort(),
    peerPort: await freePort(),
    clusterToken: `shoal-test-${process.pid}`,
    restartMinMs: 100,
    ...extra,
  };
}

/** A member started `how`, stopped when the test ends. */
export async function startMember(
  t: TestContext,
  opts: EtcdMemberOptions,
  how: EtcdStart,
): Promise<EtcdMember> {
  const m = await EtcdMember.start(opts, how);
  defer(t, () => m.stop());
  return m;
}
