// NKey users and accounts on shoal's message server, as the official `nats` client sees them
// (nkeyAuthenticator signing the INFO nonce), and the same raw sessions played against the Go
// nats-server with the same config file: both must answer alike.

import { test, describe, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, ErrorCode, nkeyAuthenticator, StringCodec, type NatsError } from "nats";
import { createUser, type KeyPair } from "nkeys.js";
import {
  goServerPath,
  RawConn,
  runGoServer,
  runServer,
  useClient,
  useServer,
  type RunningServer,
} from "../helpers/servers.js";
import { verifyNonce } from "../../src/nats/auth.js";
import { defer } from "../helpers/defer.js";

const sc = StringCodec();
const isAuthViolation = (err: NatsError) => err.code === ErrorCode.AuthorizationViolation;

const alice = createUser();
const bob = createUser();
const stranger = createUser();
const pub = (kp: KeyPair) => kp.getPublicKey();

/** Runs shoal (or the Go server) with a config file written to a fresh directory. */
async function runWithConfig(
  t: TestContext,
  kind: "shoal" | "go",
  conf: string,
): Promise<RunningServer> {
  const dir = mkdtempSync(join(tmpdir(), "shoal-acc-"));
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "server.conf");
  writeFileSync(file, conf);
  const args = ["-c", file, "-p", "-1"];
  const srv = kind === "go" ? await runGoServer(args) : await runServer(args);
  defer(t, () => srv.stop("SIGKILL"));
  return srv;
}

const BOTH = ["shoal", "go"] as const;
const skipGo = (kind: string) =>
  kind === "go" && !goServerPath() ? "the Go nats-server is not installed" : false;

/** A raw connection that has read INFO; returns it with the INFO's fields. */
async function rawInfo(port: number): Promise<{ c: RawConn; info: Record<string, unknown> }> {
  const c = await RawConn.connect(port);
  await c.waitFor(/^INFO .*\r\n/);
  const info = JSON.parse(/^INFO (.*) \r\n/.exec(c.data)![1]!) as Record<string, unknown>;
  c.data = "";
  return { c, info };
}

/** CONNECT as an nkey user signing the nonce with kp (or a bad signature), then PING. */
async function nkeyConnect(port: number, kp: KeyPair, badSig = false): Promise<string> {
  const { c, info } = await rawInfo(port);
  try {
    const nonce = String(info["nonce"]);
    const signed = kp.sign(new TextEncoder().encode(badSig ? nonce + "x" : nonce));
    const sig = Buffer.from(signed).toString("base64url");
    c.send(`CONNECT ${JSON.stringify({ verbose: false, nkey: pub(kp), sig })}\r\nPING\r\n`);
    return await c.waitFor(/PONG\r\n|-ERR .*\r\n/);
  } finally {
    c.close();
  }
}

describe("NKey users", () => {
  test("the official client signs the nonce with nkeyAuthenticator; others are refused", async (t) => {
    const s = await useServer(t, {
      nkeys: [
        { nkey: pub(alice) },
        { nkey: pub(bob), permissions: { publish: { allow: ["bob.>"], deny: [] } } },
      ],
    });
    const a = await useClient(t, s.port, {
      reconnect: false,
      authenticator: nkeyAuthenticator(alice.getSeed()),
    });
    assert.equal(typeof a.info?.nonce, "string");
    assert.equal(a.info?.auth_required, true);
    const got: string[] = [];
    a.subscribe(">", { callback: (_e, m) => got.push(m.subject) });
    await a.flush();
    const b = await useClient(t, s.port, {
      reconnect: false,
      authenticator: nkeyAuthenticator(bob.getSeed()),
    });
    b.publish("not.bob", sc.encode("x"));
    b.publish("bob.ok", sc.encode("y"));
    await b.flush();
    await a.flush();
    assert.deepEqual(got, ["bob.ok"]);
    await assert.rejects(
      connect({
        servers: `127.0.0.1:${s.port}`,
        reconnect: false,
        authenticator: nkeyAuthenticator(stranger.getSeed()),
      }),
      isAuthViolation,
    );
    await assert.rejects(
      connect({ servers: `127.0.0.1:${s.port}`, reconnect: false }),
      isAuthViolation,
    );
    // /connz names an nkey user by its public key.
    const conns = [...s.clients.values()].map((c) => c.user).sort();
    assert.deepEqual(conns, [pub(alice), pub(bob)].sort());
  });

  test("verifyNonce: only the key's own signature of that nonce passes", () => {
    const nonce = "abcdefghijklmno";
    const sig = Buffer.from(alice.sign(Buffer.from(nonce))).toString("base64url");
    assert.equal(verifyNonce(pub(alice), nonce, sig), true);
    assert.equal(
      verifyNonce(pub(alice), nonce, Buffer.from(sig, "base64url").toString("base64")),
      true,
    );
    assert.equal(verifyNonce(pub(bob), nonce, sig), false);
    assert.equal(verifyNonce(pub(alice), "other", sig), false);
    assert.equal(verifyNonce(pub(alice), nonce, ""), false);
    assert.equal(verifyNonce("not-a-key", nonce, sig), false);
  });

  const NKEY_CONF = `
authorization {
  users [
    { nkey: ${pub(alice)} }
    { user: pw, password: secret }
  ]
}
`;
  for (const kind of BOTH) {
    test(
      `${kind}: nonce in INFO, signed CONNECT accepted, bad ones refused`,
      { skip: skipGo(kind) },
      async (t) => {
        const srv = await runWithConfig(t, kind, NKEY_CONF);
        const { c, info } = await rawInfo(srv.port);
        c.close();
        assert.match(String(info["nonce"]), /^[A-Za-z0-9_-]{15}$/);
        assert.equal(info["auth_required"], true);
        const refused = "-ERR 'Authorization Violation'\r\n";
        assert.equal(await nkeyConnect(srv.port, alice), "PONG\r\n");
        assert.equal(await nkeyConnect(srv.port, alice, true), refused);
        assert.equal(await nkeyConnect(srv.port, stranger), refused);
        // A users-list password user still logs in beside the nkey users.
        const nc = await useClient(t, srv.port, { reconnect: false, user: "pw", pass: "secret" });
        await nc.flush();
        const viaClient = await useClient(t, srv.port, {
          reconnect: false,
          authenticator: nkeyAuthenticator(alice.getSeed()),
        });
        await viaClient.flush();
      },
    );
  }
});
