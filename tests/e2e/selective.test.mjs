// Selective sync through the web UI: two real `peerfold serve` daemons on loopback sharing a
// folder (set up with the CLI), Debian's chromium driven by playwright-core. On B's folder
// screen: expand the tree, uncheck a directory that is on B (the UI asks: keep it or move it to
// the trash can; we move it), see the folder at 100 % and up to date without it while A keeps
// its copy, check it again and see it arrive. A screenshot goes to target/artifacts/e2e/.
//
// Needs the built UI (`npm run build`) and binary (`cargo build`); PEERFOLD_BIN overrides
// where the binary is looked for, CHROMIUM where the browser is.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, rmSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BIN, LIMIT, fileIs, freePort, peerfold, start, stopAll, until } from "./harness.mjs";
import { launchBrowser, ARTIFACTS } from "./browser.mjs";


const scratch = mkdtempSync(join(tmpdir(), "peerfold-e2e-sel-"));
let browser;

function startDaemon(home, port) {
  const listen = `tcp://127.0.0.1:${port},quic://127.0.0.1:${port}`;
  // No discovery: the test stays on loopback, and the daemons know each other's addresses.
  const args = ["--home", home, "serve", "--listen", listen, "--gui-address", "127.0.0.1:0", "--no-discovery"];
  let api;
  const ready = (line) => {
    const m = /^API on http:\/\/(.+)\/api\/$/.exec(line);
    if (m) api = m[1];
    return line.startsWith("Listening on") && api !== undefined;
  };
  return start(home, BIN, args, ready, { RUST_LOG: "warn" }).then((proc) => Object.assign(proc, { home, api }));
}

function write(root, rel, content) {
  const path = join(root, rel);
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, content);
}

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stopAll();
  rmSync(scratch, { recursive: true, force: true });
});

test("deselect a directory in the folder's tree, see 100 %, select it again and see it arrive", async () => {
  const [homeA, homeB] = [join(scratch, "a", "home"), join(scratch, "b", "home")];
  const [dirA, dirB] = [join(scratch, "a", "photos"), join(scratch, "b", "photos")];
  mkdirSync(dirA, { recursive: true });
  mkdirSync(dirB, { recursive: true });
  const [idA, idB] = [peerfold(homeA, "id"), peerfold(homeB, "id")];
  const [portA, portB] = [await freePort(), await freePort()];
  peerfold(homeA, "device", "add", idB, "--name", "device-b", "--address", `tcp://127.0.0.1:${portB}`);
  peerfold(homeB, "device", "add", idA, "--name", "device-a", "--address", `tcp://127.0.0.1:${portA}`);
  peerfold(homeA, "folder", "add", dirA, "--id", "photos", "--label", "Album", "--share", idB);
  peerfold(homeB, "folder", "add", dirB, "--id", "photos", "--label", "Album", "--share", idA);
  write(dirA, "Photos/2023/a.jpg", "photo of 2023\n");
  write(dirA, "Photos/2024/b.jpg", "photo of 2024\n");
  write(dirA, "top.txt", "top\n");
  const b = await startDaemon(homeB, portB);
  await startDaemon(homeA, portA);
  await until("B to have A's files", () => fileIs(join(dirB, "Photos/2023/a.jpg"), "photo of 2023\n"));

  const context = await browser.newContext({ viewport: { width: 1280, height: 1200 } });
  const page = await context.newPage();
  page.setDefaultTimeout(LIMIT);
  await page.goto(peerfold(b.home, "gui", "url"));
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  await page.locator('li[aria-label="Folder Album"]').getByRole("link", { name: "Album" }).click();
  await page.getByRole("heading", { name: "Album", level: 1 }).waitFor();

  // The tree: expand Photos, uncheck 2023. It is on B, so the UI asks; move it to the trash can.
  const tree = page.getByRole("region", { name: "Selective sync" });
  await tree.getByRole("button", { name: "Expand Photos" }).click();
  const box = tree.getByRole("checkbox", { name: "Sync Photos/2023" });
  assert.equal(await box.isChecked(), true);
  await box.click();
  const ask = tree.getByRole("group", { name: "Local copy" });
  await ask.getByText(/Photos\/2023 is on this device/).waitFor();
  await ask.getByRole("button", { name: "Move it to the trash can" }).click();
  await tree.getByRole("status").filter({ hasText: /moved to the trash can/ }).waitFor();
  await until("2023 unchecked", async () => !(await box.isChecked()));
  await until("B's copy gone", () => !existsSync(join(dirB, "Photos/2023")));
  assert.ok(readdirSync(join(dirB, ".stversions", "Photos", "2023")).length === 1, "B's copy is in the trash can");
  // The parent shows that part of it is left out.
  assert.equal(await tree.getByRole("checkbox", { name: "Sync Photos", exact: true }).evaluate((el) => el.indeterminate), true);

  // The patterns hold the marked block, and the trash can lists the moved file.
  const patterns = page.getByRole("form", { name: "Ignore patterns" }).getByRole("textbox");
  await until("the block in the patterns", async () => (await patterns.inputValue()).split("\n").includes("/Photos/2023"));
  await page.getByRole("region", { name: "Versions to restore" }).getByText("Photos/2023/a.jpg").waitFor();

  // The folder is complete without it, and A keeps its copy.
  const completion = page.getByRole("progressbar", { name: "Completion" });
  await until("100 %", async () => (await completion.getAttribute("aria-valuenow")) === "100");
  await page.getByText("Up to date", { exact: true }).first().waitFor();
  // Here: top.txt and 2024's photo; what was moved away is not counted.
  await page.getByText("2 files, 2 directories, 18 B", { exact: true }).waitFor();
  assert.equal(await fileIs(join(dirA, "Photos/2023/a.jpg"), "photo of 2023\n"), true, "A's copy is never deleted");
  await page.screenshot({ path: join(ARTIFACTS, "selective-b.png"), fullPage: true });

  // Checked again: it arrives.
  await box.click();
  await tree.getByRole("status").filter({ hasText: /synced here again/ }).waitFor();
  await until("2023 back on B", () => fileIs(join(dirB, "Photos/2023/a.jpg"), "photo of 2023\n"));
  await until("2023 checked", () => box.isChecked());
  await context.close();
});
