// The browser every web UI test drives: Debian's chromium, headless, with none of its own
// traffic (no QUIC, no background networking, no updates), so nothing leaves loopback.
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { BIN, ROOT } from "./harness.mjs";

/** Debian's chromium; CHROMIUM overrides it. */
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
/** Where a failing test leaves its screenshots. */
export const ARTIFACTS = join(ROOT, "target", "artifacts", "e2e");

/** Checks that the daemon and the browser exist (a clear sentence when not), and starts it. */
export async function launchBrowser() {
  assert.ok(existsSync(BIN), `no peerfold binary at ${BIN}: run cargo build first`);
  assert.ok(existsSync(CHROMIUM), `no chromium at ${CHROMIUM}: apt-get install chromium`);
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
