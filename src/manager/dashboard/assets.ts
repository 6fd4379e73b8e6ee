// The dashboard's page and scripts: web/index.html and web/style.css as written, and the
// scripts tsc builds from web/src/ into web/dist/ (`npm run build`, which `npm install` runs).
// Read once at start into memory; only these paths are served.

import { existsSync, readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";

export interface Asset {
  type: string;
  body: Buffer;
}

/** web/ of the installed package, seen from dist/src/manager/dashboard/. */
export const WEB_DIR = fileURLToPath(new URL("../../../../web/", import.meta.url));

/** URL path → asset; `missing` names what was not found (the page is not built). */
export function loadAssets(dir = WEB_DIR): { assets: Map<string, Asset>; missing: string[] } {
  const assets = new Map<string, Asset>();
  const missing: string[] = [];
  const add = (url: string, file: string, type: string) => {
    if (!existsSync(file)) return missing.push(file);
    assets.set(url, { type, body: readFileSync(file) });
  };
  add("/", `${dir}index.html`, "text/html; charset=utf-8");
  add("/style.css", `${dir}style.css`, "text/css; charset=utf-8");
  const js = `${dir}dist/`;
  if (!existsSync(js)) missing.push(js);
  else {
    for (const f of readdirSync(js)) {
      if (f.endsWith(".js")) add(`/js/${f}`, `${js}${f}`, "text/javascript; charset=utf-8");
    }
  }
  return { assets, missing };
}
