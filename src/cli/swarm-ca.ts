// `shoal swarm ca [--rotate]`: prints the swarm's root CA certificate, or rotates it and follows
// the rotation as Docker does — the desired root's digest, then two progress bars (nodes whose
// certificate is from the new root: "rotated TLS certificates"; nodes that trust only it:
// "rotated CA certificates") — and prints the new root when every node has moved. `--detach`
// returns at once, `--quiet` hides the progress.

import { call } from "./api-client.js";
import { parseDurationFlag } from "./args.js";
import type { SwarmCa } from "../api/http.js";

export interface SwarmCaOptions {
  rotate?: boolean;
  detach?: boolean;
  quiet?: boolean;
  certExpiry?: string;
}

const BAR = 50;

/** Docker's progress bar (jsonmessage): `[====>     ] 1/2 nodes`. */
export function progressBar(current: number, total: number): string {
  const n = total > 0 ? Math.floor((BAR * Math.min(current, total)) / total) : 0;
  const fill = n >= BAR ? "=".repeat(BAR) : "=".repeat(n) + ">" + " ".repeat(BAR - n - 1);
  return `[${fill}] ${current}/${total} nodes`;
}

/** The two progress lines of a rotation (aligned as Docker's). */
export function rotationLines(ca: SwarmCa): string[] {
  return [
    `  rotated TLS certificates: ${progressBar(ca.certsRotated, ca.nodes)}`,
    `  rotated CA certificates:  ${progressBar(ca.rootsRotated, ca.nodes)}`,
  ];
}

/** Whether a rotation has converged: the old root dropped, every node on the new one only. */
export const converged = (ca: SwarmCa) =>
  !ca.rotating && ca.certsRotated === ca.nodes && ca.rootsRotated === ca.nodes;

export async function swarmCa(
  o: SwarmCaOptions,
  io: { out: NodeJS.WriteStream; pollMs?: number } = { out: process.stdout },
): Promise<number> {
  const certExpiryMs =
    o.certExpiry !== undefined ? parseDurationFlag("--cert-expiry", o.certExpiry) : undefined;
  if (!o.rotate) {
    if (certExpiryMs !== undefined) await call("POST", "/v1/swarm/update", { certExpiryMs });
    const ca = await call<SwarmCa>("GET", "/v1/swarm/ca");
    io.out.write(ca.certPem.trim() + "\n");
    return 0;
  }
  let ca = await call<SwarmCa>(
    "POST",
    "/v1/swarm/ca/rotate",
    certExpiryMs !== undefined ? { certExpiryMs } : {},
  );
  if (o.detach) {
    io.out.write(ca.certPem.trim() + "\n");
    return 0;
  }
  const tty = io.out.isTTY === true && !o.quiet;
  if (!o.quiet) io.out.write(`desired root digest: ${ca.digest}\n`);
  let shown = "";
  for (;;) {
    const lines = rotationLines(ca);
    const text = lines.join("\n");
    if (!o.quiet && text !== shown) {
      // On a terminal the bars are redrawn in place; otherwise each change is a new pair of lines.
      if (tty && shown) io.out.write(`\x1b[${lines.length}A`);
      io.out.write(lines.map((l) => (tty ? `\x1b[2K${l}` : l)).join("\n") + "\n");
      shown = text;
    }
    if (converged(ca)) break;
    await new Promise((r) => setTimeout(r, io.pollMs ?? 500));
    ca = await call<SwarmCa>("GET", "/v1/swarm/ca");
  }
  io.out.write(ca.certPem.trim() + "\n");
  return 0;
}
