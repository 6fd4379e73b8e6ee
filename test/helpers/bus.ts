// The control bus for tests, in one process: a message server with the bus users (agents and
// the dispatcher authenticate, applications are kept out of $SHOAL.>; a worker here logs in
// with a password and has the permissions its certificate's user has in a daemon, whose
// certificates test/daemon/pki.test.ts covers), and a worker's side of it
// (an AgentSession driving a real Agent over the mock driver). Everything stops when the test
// ends.

import type { TestContext } from "node:test";
import { Agent } from "../../src/node/agent.js";
import { AgentSession, type SessionOptions } from "../../src/node/session.js";
import { APP_USER } from "../../src/api/bus.js";
import type { BusCredentials } from "../../src/api/bus.js";
import type { User } from "../../src/nats/options.js";
import {
  agentPassword,
  appAccounts,
  busUsers,
  workerPermissions,
} from "../../src/manager/bus-users.js";
import { MockDriver, MockKernel } from "../node/mock-driver.js";
import { tempDir } from "../node/helpers.js";
import { startServer } from "./servers.js";

export const BUS_SECRET = "test-bus-secret";
export const BUS_AGENT_PASSWORD = agentPassword(BUS_SECRET);
export const quietLog = { info() {}, warn() {}, error() {}, debug() {} };

/** The workers the test bus has users for. */
export const BUS_WORKERS = ["w1", "w2", "w3"];

/** Worker `nodeId`'s credentials on the test bus. */
export function nodeCredentials(nodeId: string): BusCredentials {
  return { user: `node-${nodeId}`, pass: `pass-${nodeId}` };
}

/** The test bus's users: the agent, applications, and workers w1-w3 (worker permissions). */
export function testBusUsers(): User[] {
  return [
    ...busUsers(BUS_SECRET, "test-cluster", [], [], true),
    ...BUS_WORKERS.map((id) => {
      const c = nodeCredentials(id);
      return { user: c.user, password: c.pass, permissions: workerPermissions(id) };
    }),
  ];
}

/** The test bus's authorization: its users, the applications' account, anonymous = app. */
export function testBusAuth() {
  return { users: testBusUsers(), accounts: appAccounts([]), noAuthUser: APP_USER };
}

/** A message server with the bus users (the agent user, workers w1-w3, applications); returns
 * its URL. */
export async function startBus(t: TestContext): Promise<string> {
  const server = await startServer({
    ...testBusAuth(),
  });
  t.after(() => server.shutdown());
  return `nats://127.0.0.1:${server.port}`;
}

/** Worker `nodeId`'s agent connected to the bus at `url` (heartbeats every 100 ms). */
export async function startWorkerSession(
  t: TestContext,
  url: string,
  nodeId: string,
  opts: Partial<SessionOptions> = {},
): Promise<{ session: AgentSession; agent: Agent; kernel: MockKernel }> {
  const session = new AgentSession({
    nodeId,
    hostname: nodeId,
    natsUrls: [url],
    bus: nodeCredentials(nodeId),
    heartbeatMs: 100,
    onEndpoints: () => {},
    log: quietLog,
    ...opts,
  });
  const kernel = new MockKernel();
  const agent = new Agent(new MockDriver(kernel), quietLog, {
    nodeId,
    hostname: nodeId,
    dataDir: tempDir(t),
    natsUrl: url,
    logMaxBytes: 1 << 20,
    report: session.report,
  });
  await session.start(agent);
  t.after(async () => {
    await session.stop();
    await agent.stop(true);
  });
  return { session, agent, kernel };
}
