// End to end through the desktop app: the built app under Xvfb (run this file inside
// `xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session --`), driven by tauri-driver and
// WebKitWebDriver through the first-run wizard, paired with a headless `peerfold serve`, both on
// loopback only. A file saved in the app's folder appears in the daemon's, and one saved there
// appears in the app's; a screenshot of the main window goes to target/artifacts/desktop/.
//
// Needs the built UI (`npm run build`), `cargo build` (peerfold) and
// `cargo build -p peerfold-desktop`, and tauri-driver (`cargo install tauri-driver --locked`).
// PEERFOLD_BIN, PEERFOLD_DESKTOP_BIN and TAURI_DRIVER override where they are looked for.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir, homedir } from "node:os";
import { join } from "node:path";
import net from "node:net";
import { remote } from "webdriverio";
import { BIN, LIMIT, ROOT, TARGET, fileIs, freePort, peerfold, spawnLogged, start, stopAll, until } from "../../tests/e2e/harness.mjs";

const APP = process.env.PEERFOLD_DESKTOP_BIN ?? join(TARGET, "debug", "peerfold-desktop");
const DRIVER = process.env.TAURI_DRIVER ?? join(homedir(), ".cargo", "bin", "tauri-driver");
const ARTIFACTS = join(ROOT, "target", "artifacts", "desktop");

const scratch = mkdtempSync(join(tmpdir(), "peerfold-desktop-e2e-"));
let browser;

/** Starts tauri-driver; resolves once it accepts connections. */
async function startDriver(port) {
  const proc = spawnLogged("tauri-driver", DRIVER, ["--port", String(port), "--native-driver", "/usr/bin/WebKitWebDriver"]);
  proc.child.stderr.on("data", (d) => (proc.log += d));
  await until("tauri-driver to listen", () =>
    new Promise((ok) => {
      const socket = net.connect(port, "127.0.0.1", () => socket.end(() => ok(true)));
      socket.once("error", () => ok(false));
    }),
  );
  return proc;
}

before(() => {
  for (const [what, path] of [["peerfold", BIN], ["peerfold-desktop", APP], ["tauri-driver", DRIVER]]) {
    assert.ok(existsSync(path), `no ${what} at ${path}: see the comment at the top of this file`);
  }
  assert.ok(process.env.DISPLAY, "no X display: run inside xvfb-run");
  mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  // Ending the session closes the app; tauri-driver and the daemon are ours to stop.
  await browser?.deleteSession().catch(() => {});
  await stopAll();
  rmSync(scratch, { recursive: true, force: true });
});

test("the app's first-run wizard pairs it with a daemon, and files sync both ways", async () => {
  // The headless side: a `peerfold serve` on loopback.
  const serveHome = join(scratch, "serve", "home");
  const serveDir = join(scratch, "serve", "docs");
  const servePort = await freePort();
  const serveId = peerfold(serveHome, "id");
  const serveArgs = ["--home", serveHome, "serve", "--listen", `tcp://127.0.0.1:${servePort}`];
  serveArgs.push("--gui-address", "127.0.0.1:0", "--no-discovery");
  await start("peerfold serve", BIN, serveArgs, (line) => /^Listening on/.test(line), { RUST_LOG: "warn" });

  // The app, on a fresh home of its own, listening on loopback only.
  const appHome = join(scratch, "app", "home");
  const appDir = join(scratch, "app", "docs");
  const appPort = await freePort();
  const driverPort = await freePort();
  await startDriver(driverPort);
  browser = await remote({
    hostname: "127.0.0.1",
    port: driverPort,
    logLevel: "warn",
    connectionRetryTimeout: LIMIT,
    capabilities: {
      browserName: "wry",
      "wdio:enforceWebDriverClassic": true,
      "tauri:options": {
        application: APP,
        args: ["--home", appHome, "--listen", `tcp://127.0.0.1:${appPort}`, "--no-discovery"],
      },
    },
  });
  browser.setTimeout({ implicit: 0 });
  assert.match(await browser.getTitle(), /^Peerfold/);
  const $ = (selector) => browser.$(selector);
  const waitFor = async (selector) => {
    const el = await $(selector);
    await el.waitForDisplayed({ timeout: LIMIT });
    return el;
  };

  // The wizard: name this device, read its ID, add the daemon, share a first folder.
  await waitFor("[data-testid=wizard]");
  const name = await waitFor("#wizard-name");
  await name.clearValue();
  await name.setValue("desktop-e2e");
  await (await $("#wizard-name-next")).click();
  const idEl = await waitFor("#wizard-device-id");
  const appId = (await idEl.getText()).trim();
  assert.match(appId, /^[A-Z2-7]{7}(-[A-Z2-7]{7}){7}$/);
  const status = JSON.parse(peerfold(appHome, "status", "--json"));
  assert.equal(status.device, appId, "the CLI reaches the app's engine through its control socket");
  await waitFor("img.qr");
  await (await $("#wizard-id-next")).click();
  await (await waitFor("#wizard-device")).setValue(serveId);
  await (await $("#wizard-device-name")).setValue("nas");
  await (await $("#wizard-device-addresses")).setValue(`tcp://127.0.0.1:${servePort}`);
  await (await $("#wizard-device-next")).click();
  await (await waitFor("#wizard-folder-path")).setValue(appDir);
  await (await $("#wizard-folder-label")).setValue("Docs");
  await (await $("#wizard-folder-share")).click();
  await until("the wizard to close", async () => !(await (await $("[data-testid=wizard]")).isExisting()));

  // The daemon accepts the app (it dialled and is pending), then the folder it offers.
  await until("the app to be pending on the daemon", () => peerfold(serveHome, "pending", "list", "--json").includes(appId));
  peerfold(serveHome, "pending", "accept-device", appId, "--name", "desktop", "--address", `tcp://127.0.0.1:${appPort}`);
  await until("the folder offer on the daemon", () =>
    JSON.parse(peerfold(serveHome, "pending", "list", "--json")).folders.some((f) => f.folder === "docs"),
  );
  peerfold(serveHome, "pending", "accept-folder", "docs", "--from", appId, serveDir, "--create");

  // A file saved on one side appears on the other, both ways.
  writeFileSync(join(appDir, "from-app.txt"), "saved in the app's folder\n");
  await until("from-app.txt on the daemon", () => fileIs(join(serveDir, "from-app.txt"), "saved in the app's folder\n"));
  writeFileSync(join(serveDir, "from-serve.txt"), "saved on the daemon\n");
  await until("from-serve.txt in the app's folder", () => fileIs(join(appDir, "from-serve.txt"), "saved on the daemon\n"));

  // The app's overview shows the folder up to date; the screenshot is the test's artifact.
  await until("the overview to show Docs up to date with both files", async () => {
    const text = await (await $("main")).getText();
    return text.includes("Docs") && text.includes("Up to date") && text.includes("2 files");
  });
  const shot = join(ARTIFACTS, "main-window.png");
  await browser.saveScreenshot(shot);
  assert.ok(existsSync(shot));
  console.log(`screenshot: ${shot}`);
});
