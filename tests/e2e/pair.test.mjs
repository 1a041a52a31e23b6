// End to end through the web UI: two real `peerfold serve` daemons on loopback, Debian's
// chromium driven by playwright-core. Pair them (A adds B by the ID B's page shows, B accepts
// the request), share a folder (A shares, B accepts the offer into a path), see a file written
// on A appear on B's disk and both overviews reach "Up to date". Screenshots of the overview
// and the folder screen go to target/artifacts/e2e/.
//
// Needs the built UI (`npm run build`) and binary (`cargo build`); PEERFOLD_BIN overrides
// where the binary is looked for, CHROMIUM where the browser is.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BIN, LIMIT, fileIs, freePort, peerfold, start, stopAll, until } from "./harness.mjs";
import { launchBrowser, ARTIFACTS } from "./browser.mjs";


const scratch = mkdtempSync(join(tmpdir(), "peerfold-e2e-"));
let browser;

/** Starts `peerfold serve` on a fresh home; resolves once it listens, with its addresses. */
async function startDaemon(name) {
  const home = join(scratch, name, "home");
  const port = await freePort();
  const listen = `tcp://127.0.0.1:${port},quic://127.0.0.1:${port}`;
  // No discovery: the test stays on loopback, and the daemons know each other's addresses.
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

/** The sign-in link `peerfold gui url` prints for a running daemon. */
function guiUrl(daemon) {
  return peerfold(daemon.home, "gui", "url");
}

async function openUi(daemon) {
  // A context each: the two daemons share the host 127.0.0.1, and cookies do not care for ports.
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(LIMIT);
  const link = guiUrl(daemon);
  assert.match(link, new RegExp(`^http://${daemon.api.replace(/[.]/g, "\\.")}/#key=\\w+$`));
  await page.goto(link);
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  assert.equal(new URL(page.url()).hash, "", "the key leaves the address bar");
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

test("two daemons pair, share a folder and sync a file, all through the web UI", async () => {
  const [a, b] = await Promise.all([startDaemon("a"), startDaemon("b")]);
  const [pageA, pageB] = await Promise.all([openUi(a), openUi(b)]);

  // B's ID, read from B's "This device" screen.
  await go(pageB, "This device");
  const idB = (await pageB.getByTestId("device-id").textContent()).trim();
  assert.match(idB, /^[A-Z2-7]{7}(-[A-Z2-7]{7}){7}$/);
  assert.equal(await pageB.getByRole("img", { name: /QR code/ }).isVisible(), true);

  // A adds B by that ID, at B's listen address.
  await go(pageA, "Add a device");
  await pageA.getByLabel("Device ID", { exact: true }).fill(idB);
  await pageA.getByLabel("Name", { exact: true }).fill("device-b");
  await pageA.getByLabel("Addresses", { exact: true }).fill(`tcp://127.0.0.1:${b.port}`);
  await pageA.getByRole("button", { name: "Add device" }).click();
  await pageA.getByRole("status").filter({ hasText: /device/i }).waitFor();

  // A dials B; B lists A as a pending request and accepts it.
  await go(pageB, "Overview");
  await pageB.getByRole("button", { name: /^Accept device/ }).click();
  await pageB.getByRole("button", { name: /^Accept device/ }).waitFor({ state: "detached" });

  // They connect; A's overview shows B connected, with its address and transport.
  await go(pageA, "Overview");
  const cardB = pageA.locator('li[aria-label="Device device-b"]');
  await cardB.getByText("Connected", { exact: true }).waitFor();
  await cardB.getByText(/^(TCP|QUIC)$/).waitFor();

  // A shares a folder with B.
  const dirA = join(scratch, "a", "docs");
  const dirB = join(scratch, "b", "docs");
  mkdirSync(dirA, { recursive: true });
  await go(pageA, "Share a folder");
  await pageA.getByLabel("Path", { exact: true }).fill(dirA);
  await pageA.getByLabel("Label", { exact: true }).fill("Docs");
  await pageA.getByLabel("Folder ID", { exact: true }).fill("docs");
  await pageA.getByRole("checkbox", { name: "device-b" }).check();
  await pageA.getByRole("button", { name: "Share folder" }).click();
  await pageA.getByRole("heading", { name: "Docs", level: 1 }).waitFor();

  // B accepts the offer into a path of its own.
  await go(pageB, "Overview");
  const offer = pageB.locator('li[aria-label="Folder offer Docs"]');
  await offer.getByLabel(/Keep it at/).fill(dirB);
  await offer.getByRole("button", { name: "Accept folder Docs" }).click();
  await pageB.locator('li[aria-label="Folder Docs"]').waitFor();

  // A file written on A arrives on B's disk.
  writeFileSync(join(dirA, "hello.txt"), "hello from A\n");
  await until("hello.txt on B", () => fileIs(join(dirB, "hello.txt"), "hello from A\n"));

  // Both overviews reach "Up to date".
  for (const page of [pageA, pageB]) {
    await go(page, "Overview");
    await page.locator('li[aria-label="Folder Docs"]').getByText("Up to date", { exact: true }).waitFor();
  }
  await pageA.screenshot({ path: join(ARTIFACTS, "overview-a.png"), fullPage: true });
  await pageB.screenshot({ path: join(ARTIFACTS, "overview-b.png"), fullPage: true });
  await pageB.locator('li[aria-label="Folder Docs"]').getByRole("link", { name: "Docs" }).click();
  await pageB.getByRole("heading", { name: "Docs", level: 1 }).waitFor();
  await pageB.getByText("Up to date", { exact: true }).first().waitFor();
  await pageB.screenshot({ path: join(ARTIFACTS, "folder-b.png"), fullPage: true });

  // Pausing every device for an hour disconnects B, and says until when; resuming connects again.
  await go(pageA, "Overview");
  await pageA.getByRole("button", { name: "Pause all for 1 h" }).click();
  await pageA.getByRole("status").filter({ hasText: /Every device is paused until/ }).waitFor();
  await cardB.getByText("Connected", { exact: true }).waitFor({ state: "detached" });
  await pageA.getByRole("button", { name: "Resume all" }).click();
  await cardB.getByText("Connected", { exact: true }).waitFor();
  console.log(`screenshots in ${ARTIFACTS}`);

  // Without the link, the sign-in form: a wrong key is refused with the API's sentence.
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(LIMIT);
  await page.goto(`http://${a.api}/settings`);
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  await page.getByLabel("API key", { exact: true }).fill("wrong");
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByRole("alert").filter({ hasText: "The API key is not valid." }).waitFor();
  await page.getByLabel("API key", { exact: true }).fill(new URL(guiUrl(a)).hash.slice("#key=".length));
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByRole("heading", { name: "Settings", level: 1 }).waitFor();
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  await context.close();
});
