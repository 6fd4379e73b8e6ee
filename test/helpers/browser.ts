// Headless Chromium for the dashboard's end-to-end tests: Debian's `chromium` (CHROMIUM
// overrides the path) driven by playwright-core, which never downloads a browser of its own.
// Without the browser the tests skip, except in CI (.ci/run installs it), where they fail.

import { existsSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";
import type { TestContext } from "node:test";
import { defer } from "./defer.js";

export const CHROMIUM = process.env["CHROMIUM"] || "/usr/bin/chromium";
const CI = !["", "0", "false"].includes(process.env["CI"] ?? "");

/** `false` (run), or why the browser tests skip. */
export const browserSkip: false | string =
  existsSync(CHROMIUM) || CI
    ? false
    : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM)`;

/** A fresh browser and page, closed when the test ends; a laptop-sized window. */
export async function openPage(t: TestContext): Promise<{ browser: Browser; page: Page }> {
  if (!existsSync(CHROMIUM))
    throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (as .ci/run does)`);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--headless", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  defer(t, () => browser.close());
  const page = await browser.newPage({ viewport: { width: 1366, height: 800 } });
  page.setDefaultTimeout(15_000);
  return { browser, page };
}

/**
 * Waits until `expr` (JavaScript text, run in the page) is truthy. Each check is one evaluation
 * from outside the page: Playwright's own waitForFunction polls with an eval inside the page,
 * which the dashboard's Content-Security-Policy rightly refuses.
 */
export async function waitForPage(page: Page, expr: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await page.evaluate(expr)) return;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${expr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
