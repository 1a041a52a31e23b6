// End to end through the web UI's Settings: a schedule rule added, edited and removed, and
// pausing on a metered network turned on, each seen in `peerfold limits` and `peerfold config
// show` (the daemon's configuration). One `peerfold serve` on loopback; its system bus is a
// path where no bus listens, so the machine's own D-Bus is never asked and the network's state
// shows as unknown. The browser is set up by browser.mjs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BIN, LIMIT, freePort, peerfold, start, stopAll, until } from "./harness.mjs";
import { launchBrowser, ARTIFACTS } from "./browser.mjs";


const scratch = mkdtempSync(join(tmpdir(), "peerfold-e2e-settings-"));
let browser;

async function startDaemon(name) {
  const home = join(scratch, name, "home");
  const port = await freePort();
  const listen = `tcp://127.0.0.1:${port}`;
  const args = ["--home", home, "serve", "--listen", listen, "--gui-address", "127.0.0.1:0", "--no-discovery"];
  let api;
  const ready = (line) => {
    const m = /^API on http:\/\/(.+)\/api\/$/.exec(line);
    if (m) api = m[1];
    return line.startsWith("Listening on") && api !== undefined;
  };
  const env = { RUST_LOG: "warn", PEERFOLD_SYSTEM_BUS_ADDRESS: `unix:path=${join(scratch, "no-bus")}` };
  const proc = await start(name, BIN, args, ready, env);
  return Object.assign(proc, { home, port, api });
}

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stopAll();
  rmSync(scratch, { recursive: true, force: true });
});

test("a schedule rule added, edited and removed in Settings, and pausing on a metered network", async () => {
  const a = await startDaemon("a");
  const context = await browser.newContext({ viewport: { width: 1280, height: 1400 } });
  const page = await context.newPage();
  page.setDefaultTimeout(LIMIT);
  await page.goto(peerfold(a.home, "gui", "url"));
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Settings", exact: true }).click();
  const schedule = page.getByRole("region", { name: "Schedule" });
  await schedule.getByText("No rules").waitFor();

  // Add: weekdays Monday and Tuesday, 09:00 to 17:30, receiving at most 2048 KiB/s.
  await schedule.getByRole("button", { name: "Add a rule" }).click();
  const form = schedule.getByRole("form", { name: "New schedule rule" });
  await form.getByRole("checkbox", { name: "mon", exact: true }).check();
  await form.getByRole("checkbox", { name: "tue", exact: true }).check();
  await form.getByLabel("From (local time)").fill("09:00");
  await form.getByLabel("To (local time)").fill("17:30");
  await form.getByLabel("Receive at most in the window (KiB/s)").fill("2048");
  await form.getByRole("button", { name: "Save rule" }).click();
  const rule = schedule.getByRole("listitem", { name: "Schedule rule 1" });
  await rule.getByText("mon, tue 09:00–17:30: send unlimited, receive 2048 KiB/s").waitFor();
  const limits = () => peerfold(a.home, "limits");
  assert.match(limits(), /^Schedule 1: mon,tue 09:00-17:30: sending unlimited, receiving 2048 KiB\/s/m);


  // Edit it into a pause on every day.
  await rule.getByRole("button", { name: "Edit" }).click();
  const edit = schedule.getByRole("form", { name: "Edit schedule rule" });
  await edit.getByRole("checkbox", { name: "mon", exact: true }).uncheck();
  await edit.getByRole("checkbox", { name: "tue", exact: true }).uncheck();
  await page.screenshot({ path: join(ARTIFACTS, "settings-schedule.png"), fullPage: true });
  await edit.getByRole("checkbox", { name: "Pause every device in this window" }).check();
  await edit.getByRole("button", { name: "Save rule" }).click();
  await rule.getByText("every day 09:00–17:30: every device paused").waitFor();
  assert.match(limits(), /^Schedule 1: every day 09:00-17:30: every device paused/m);
  const config = peerfold(a.home, "config", "show");
  assert.match(config, /\[\[options\.schedule\]\]\s+from = "09:00"\s+to = "17:30"\s+pause = true/);

  // Remove it.
  await rule.getByRole("button", { name: "Remove" }).click();
  await schedule.getByText("No rules").waitFor();
  assert.doesNotMatch(limits(), /^Schedule/m);

  // Pause on a metered network: saved, and (no bus here) the network's state is unknown.
  const power = page.getByRole("region", { name: "Metered network and battery" });
  // The box follows the daemon's configuration, so it shows ticked once the change is saved.
  const metered = power.getByRole("checkbox", { name: /Pause every device on a metered network/ });
  await metered.click();
  await until("the box ticked", () => metered.isChecked());
  await power.getByText("(now: unknown)").waitFor();
  assert.match(peerfold(a.home, "config", "show"), /^pause_on_metered = true$/m);
  assert.match(limits(), /^Every device pauses on a metered network \(unknown\)\.$/m);
  await until("no pause from an unknown network", () => !/paused/.test(peerfold(a.home, "status")));
  await context.close();
});
