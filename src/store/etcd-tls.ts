// Client TLS for etcd that changes while the client stays open. A manager's etcd3 client (the
// store's, which the leader election shares) lives as long as the daemon, but its certificate
// is renewed and a root CA rotation changes both the certificate and the roots it must trust.
// etcd3 fixes its TLS when the client is made (it hands the PEMs to gRPC's createSsl once), so
// the client is given a gRPC channel factory instead (`channelFactoryOverride`, a gRPC client
// option that etcd3 passes through with its grpcOptions): every channel is made with gRPC's
// certificate-provider credentials fed by this source, which gRPC asks at each new connection.
// After `set`, connections made from then on present the new certificate and trust the new
// roots; the connections open stay as they are (etcd closes them when a member restarts).
// Reopening the client instead would drop the election's lease, hence the leadership.

import { createSecureContext } from "node:tls";
import { Channel, experimental, type ChannelCredentials, type ClientOptions } from "@grpc/grpc-js";
import { StoreError } from "./errors.js";
import type { EtcdTls } from "./etcd.js";

type CaListener = experimental.CaCertificateUpdateListener;
type IdentityListener = experimental.IdentityCertificateUpdateListener;

export class EtcdTlsSource implements experimental.CertificateProvider {
  private ca!: Buffer;
  private identity: { certificate: Buffer; privateKey: Buffer } | null = null;
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();
  /** Whether the client presents a certificate (fixed at creation: gRPC asks the identity
   * provider only when there is one). */
  private readonly mutual: boolean;
  readonly credentials: ChannelCredentials;

  constructor(tls: EtcdTls) {
    this.mutual = tls.cert !== undefined;
    this.set(tls);
    this.credentials = experimental.createCertificateProviderChannelCredentials(
      this,
      this.mutual ? this : null,
    );
  }

  /** The TLS new connections use now. */
  get current(): EtcdTls {
    return {
      ca: this.ca,
      ...(this.identity ? { cert: this.identity.certificate, key: this.identity.privateKey } : {}),
    };
  }

  /**
   * New connections use `tls` from now on. Throws (changing nothing) when the PEMs do not make
   * a TLS context (a key that is not the certificate's...), or when a certificate comes or goes.
   */
  set(tls: EtcdTls): void {
    if ((tls.cert === undefined) !== (tls.key === undefined)) {
      throw new StoreError("ERR_INVALID", "etcd client TLS needs both a certificate and its key");
    }
    if ((tls.cert !== undefined) !== this.mutual) {
      throw new StoreError(
        "ERR_INVALID",
        "etcd client TLS cannot start or stop presenting a certificate while the client is open",
      );
    }
    try {
      createSecureContext({ ca: tls.ca, cert: tls.cert, key: tls.key });
    } catch (err) {
      throw new StoreError("ERR_INVALID", `etcd client TLS: ${(err as Error).message}`, {
        cause: err,
      });
    }
    this.ca = Buffer.from(tls.ca);
    this.identity =
      tls.cert !== undefined && tls.key !== undefined
        ? { certificate: Buffer.from(tls.cert), privateKey: Buffer.from(tls.key) }
        : null;
    for (const l of this.caListeners) l({ caCertificate: this.ca });
    if (this.identity) for (const l of this.identityListeners) l(this.identity);
  }

  /** The gRPC client options that make every channel of an etcd3 client on this source. */
  channelOptions(): ClientOptions {
    return {
      channelFactoryOverride: (address, _fixed, options) =>
        new Channel(address, this.credentials, options),
    };
  }

  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    listener({ caCertificate: this.ca });
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    listener(this.identity);
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }
}
