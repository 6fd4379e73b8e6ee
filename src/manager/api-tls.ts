// Who may call the API over TCP with mutual TLS (`--api-addr` off loopback, or `--api-tls`):
// a client whose certificate is from this swarm's CA and names a manager that is still in the
// swarm, as a manager. Anyone who reaches the API can run commands on every node, so a worker's
// certificate (a worker's identity is for its own bus subjects) or a removed manager's is
// refused, and a client without a certificate is told how to present one.

import type { IncomingMessage } from "node:http";
import type { TLSSocket } from "node:tls";
import { X509Certificate } from "node:crypto";
import type { ErrorBody } from "../api/http.js";
import type { Node } from "../api/types.js";
import { certInfo } from "./ca.js";

export interface ApiPeer {
  /** Whether the TLS layer verified the certificate's chain against the swarm's CA. */
  authorized: boolean;
  /** The client's certificate (PEM), if it sent one. */
  certPem: string | undefined;
}

export type ApiRefusal = { status: number; body: ErrorBody };

/** Why `peer` may not use the API (null: it may). `nodeOf` reads a node from the store. */
export function apiPeerRefusal(
  peer: ApiPeer,
  clusterId: string,
  nodeOf: (id: string) => Node | undefined,
): ApiRefusal | null {
  const refuse = (status: 401 | 403, message: string): ApiRefusal => ({
    status,
    body: { message, code: status === 401 ? "ERR_UNAUTHORIZED" : "ERR_FORBIDDEN" },
  });
  if (!peer.certPem) {
    return refuse(
      401,
      "this API needs a client certificate from the swarm's CA: set SHOAL_TLS_VERIFY=1 (and SHOAL_CERT_PATH to a directory with ca.pem, cert.pem and key.pem, or run on a manager, whose certificate is used)",
    );
  }
  if (!peer.authorized) {
    return refuse(401, "the client certificate is not from this swarm's certificate authority");
  }
  const info = certInfo(peer.certPem);
  if (info.clusterId !== clusterId) {
    return refuse(401, "the client certificate is not from this swarm's certificate authority");
  }
  if (info.role !== "manager") {
    return refuse(
      403,
      `the client certificate is a worker's (node ${info.nodeId}): only a manager's certificate may use the API`,
    );
  }
  const node = nodeOf(info.nodeId);
  if (!node || node.role !== "manager") {
    return refuse(403, `node ${info.nodeId} is not a manager of this swarm`);
  }
  return null;
}

/** The peer of a request on a TLS server. */
export function peerOf(req: IncomingMessage): ApiPeer {
  const socket = req.socket as TLSSocket;
  const raw = socket.getPeerCertificate?.()?.raw;
  return {
    authorized: socket.authorized === true,
    certPem: raw ? new X509Certificate(raw).toString() : undefined,
  };
}
