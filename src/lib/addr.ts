// Network addresses as users write them: "host:port", "[v6]:port", ":port", a bare host or port,
// and URLs ("nats://user:pass@host:port"). One parser for every layer, so IPv6 works everywhere.

export interface HostPort {
  /** Without brackets ("::1", not "[::1]"); "" when the text gave none. */
  host: string;
  /** undefined when the text gave none. */
  port: number | undefined;
}

export class AddressError extends Error {
  readonly code = "ERR_ADDRESS";
}

/**
 * Splits an address into host and port. A bare IPv6 address ("::1", "fe80::1") is a host; with a
 * port it must be bracketed ("[::1]:2377"), as Go's net.SplitHostPort wants.
 */
export function parseHostPort(text: string): HostPort {
  let s = text.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, "");
  const at = s.lastIndexOf("@");
  if (at >= 0) s = s.slice(at + 1);
  s = s.replace(/\/.*$/, "");
  if (s.startsWith("[")) {
    const end = s.indexOf("]");
    if (end < 0) throw new AddressError(`invalid address "${text}": missing ']'`);
    const host = s.slice(1, end);
    const rest = s.slice(end + 1);
    if (rest === "") return { host, port: undefined };
    if (!rest.startsWith(":")) throw new AddressError(`invalid address "${text}"`);
    return { host, port: portOf(rest.slice(1), text) };
  }
  const colons = s.split(":").length - 1;
  if (colons > 1) return { host: s, port: undefined }; // a bare IPv6 address
  if (colons === 0) {
    return /^-?\d+$/.test(s) ? { host: "", port: portOf(s, text) } : { host: s, port: undefined };
  }
  const i = s.indexOf(":");
  return { host: s.slice(0, i), port: portOf(s.slice(i + 1), text) };
}

function portOf(p: string, text: string): number {
  if (!/^-?\d+$/.test(p)) throw new AddressError(`invalid port in address "${text}"`);
  const n = Number(p);
  if (n < -1 || n > 65535) throw new AddressError(`invalid port ${n} in address "${text}"`);
  return n;
}

/** host and port back into one address, bracketing IPv6 hosts. */
export function joinHostPort(host: string, port: number): string {
  return `${formatHost(host)}:${port}`;
}

/** A host as it stands before ":port" or in a URL: IPv6 in brackets. */
export function formatHost(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/** True for an unspecified (wildcard) bind address. */
export function isWildcard(host: string): boolean {
  return host === "" || host === "0.0.0.0" || host === "::";
}

/** True for a loopback address (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

/** The address part of an address with its prefix length (`10.0.1.5/24` → `10.0.1.5`); an
 * address without one is returned as it is. */
export function cidrHost(cidr: string): string {
  const slash = cidr.indexOf("/");
  return slash < 0 ? cidr : cidr.slice(0, slash);
}

/** Whether a store's endpoints (`--store` parsed: http:// or https:// URLs) are etcd with TLS. */
export function storeUsesTls(urls: readonly string[]): boolean {
  return urls.some((u) => u.startsWith("https://"));
}
