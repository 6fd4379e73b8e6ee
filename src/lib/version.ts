// shoal's version, read once from package.json (the one place it is written).

import { readFileSync } from "node:fs";

function readVersion(): string {
  // dist/src/lib/version.js and src/lib/version.ts are both three levels below the package root.
  const url = new URL("../../../package.json", import.meta.url);
  try {
    return (JSON.parse(readFileSync(url, "utf8")) as { version: string }).version;
  } catch {
    return (
      JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
        version: string;
      }
    ).version;
  }
}

export const SHOAL_VERSION = readVersion();
