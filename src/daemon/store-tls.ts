// Client TLS to an external etcd (`--store-cacert`, `--store-cert`, `--store-key`, named after
// etcdctl's --cacert/--cert/--key): the files are read when the manager opens its store, and a
// file it cannot read is an error naming the flag and the file. With TLS the endpoints are
// https:// (`--store etcds://...`, or `etcd://` with the files given).

import { readFileSync } from "node:fs";
import type { EtcdTls } from "../store/etcd.js";
import { ManagerError } from "../manager/errors.js";

/** The files' paths, as given (absolute: the daemon may run from another directory). */
export interface StoreTlsFiles {
  /** The CA that signed the etcd members' certificates. */
  cacert: string;
  /** This client's certificate and key, for an etcd that asks for one (--client-cert-auth). */
  cert?: string;
  key?: string;
}

function readFlagFile(flag: string, path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ManagerError("ERR_INVALID", `cannot read ${flag} ${path} (${why})`, { cause: err });
  }
}

/** The files' contents, for the etcd client. */
export function readStoreTls(files: StoreTlsFiles): EtcdTls {
  return {
    ca: readFlagFile("--store-cacert", files.cacert),
    ...(files.cert !== undefined ? { cert: readFlagFile("--store-cert", files.cert) } : {}),
    ...(files.key !== undefined ? { key: readFlagFile("--store-key", files.key) } : {}),
  };
}

/** The endpoints as the client takes them: https:// when TLS is on. */
export function storeEndpoints(urls: string[], tls: boolean): string[] {
  if (!tls) return urls;
  return urls.map((u) => (u.startsWith("https://") ? u : `https://${u.replace(/^http:\/\//, "")}`));
}
