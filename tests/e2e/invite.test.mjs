// End to end through the web UI: two fresh `peerfold serve` daemons pair and share a folder
// with an invitation alone. A makes the link on "This device" → "Invite a device", B pastes it
// into "Join with an invitation"; a file written on A then arrives on B's disk. The same
// browser set-up as pair.test.mjs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BIN, LIMIT, fileIs, freePort, peerfold, start, stopAll, until } from "./harness.mjs";
import { launchBrowser } from "./browser.mjs";


const scratch = mkdtempSync(join(tmpdir(), "peerfold-e2e-invite-"));
let browser;

async function startDaemon(name) {
  const home = join(scratch, name, "home");
  const port = await freePort();
  const listen = `tcp://127.0.0.1:${port},quic://127.0.0.1:${port}`;
  const args = ["--home", home, "serve", "--listen", listen, "--gui-address", "127.0.0.1:0", "--no-discovery"];
  let api;
  const ready = (line) => {
    const m = /^API on http:\/\/(.+)\/api\/$/.exec(line);
    if (m) api = m[1];
    return line.startsWith("Listening on") && api !== undefined;
  };
  const proc = await start(name, BIN, args, ready, { RUST_LOG: "warn" });
  return Object.assign(proc, { home, port, api });
}

async function openUi(daemon) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(LIMIT);
  await page.goto(peerfold(daemon.home, "gui", "url"));
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  return page;
}

async function go(page, navLabel) {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: navLabel, exact: true }).click();
}

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stopAll();
  rmSync(scratch, { recursive: true, force: true });
});

test("two fresh daemons pair and sync a folder with an invitation made and pasted in the web UI", async () => {
  const [a, b] = await Promise.all([startDaemon("a"), startDaemon("b")]);
  const [pageA, pageB] = await Promise.all([openUi(a), openUi(b)]);

  // A has a folder, shared with nobody yet.
  const dirA = join(scratch, "a", "docs");
  const dirB = join(scratch, "b", "docs");
  mkdirSync(dirA, { recursive: true });
  await go(pageA, "Share a folder");
  await pageA.getByLabel("Path", { exact: true }).fill(dirA);
  await pageA.getByLabel("Label", { exact: true }).fill("Docs");
  await pageA.getByLabel("Folder ID", { exact: true }).fill("docs");
  await pageA.getByRole("button", { name: "Share folder" }).click();
  await pageA.getByRole("heading", { name: "Docs", level: 1 }).waitFor();

  // A invites, offering it.
  await go(pageA, "This device");
  const invite = pageA.getByRole("form", { name: "Invite a device" });
  await invite.getByRole("checkbox", { name: "Docs" }).check();
  await invite.getByRole("button", { name: "Make an invitation" }).click();
  const linkBox = pageA.getByTestId("invite-link");
  await linkBox.waitFor();
  const link = await linkBox.inputValue();
  assert.match(link, /^peerfold:\/\/invite\/[A-Za-z0-9_-]+$/);
  assert.equal(await pageA.getByRole("img", { name: "The invitation link as a QR code" }).isVisible(), true);

  // B pastes it and says where to keep the folder.
  await go(pageB, "This device");
  const join_ = pageB.getByRole("form", { name: "Join with an invitation" });
  await join_.getByLabel("Invitation link", { exact: true }).fill(link);
  await join_.getByLabel("Keep Docs at").fill(dirB);
  await join_.getByRole("button", { name: "Join", exact: true }).click();
  await join_.getByRole("status").filter({ hasText: /^Joined device/ }).waitFor();

  // A file written on A arrives on B's disk.
  writeFileSync(join(dirA, "hello.txt"), "hello from A\n");
  await until("hello.txt on B", () => fileIs(join(dirB, "hello.txt"), "hello from A\n"));

  // The link was for one use: pasting it again says so.
  await join_.getByLabel("Invitation link", { exact: true }).fill(link);
  await join_.getByRole("button", { name: "Join", exact: true }).click();
  await join_.getByRole("alert").filter({ hasText: /already used/ }).waitFor();
});
