// What the end-to-end tests share (this one in tests/e2e/ and the desktop app's in
// src-tauri/e2e/): where the binaries are, free loopback ports, bounded waits, and child
// processes that are logged and stopped at the end.
import { spawn, execFileSync } from "node:child_process";
import { createInterface } from "node:readline";
import { readFileSync } from "node:fs";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";
import dgram from "node:dgram";

/** The repository's root. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** Cargo's target directory. */
export const TARGET = process.env.CARGO_TARGET_DIR ?? join(ROOT, "target");
/** The `peerfold` binary; PEERFOLD_BIN overrides it. */
export const BIN = process.env.PEERFOLD_BIN ?? join(TARGET, "debug", "peerfold");
/** Every wait is bounded by this. */
export const LIMIT = 90_000;

/** A loopback port free for both TCP and UDP (a daemon may listen on both: TCP+TLS and QUIC). */
export async function freePort() {
  for (;;) {
    const port = await new Promise((ok, fail) => {
      const server = net.createServer();
      server.once("error", fail);
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address();
        server.close(() => ok(port));
      });
    });
    const udpFree = await new Promise((ok) => {
      const socket = dgram.createSocket("udp4");
      socket.once("error", () => ok(false));
      socket.bind(port, "127.0.0.1", () => socket.close(() => ok(true)));
    });
    if (udpFree) return port;
  }
}

/** Polls `check` until it returns something truthy, for at most LIMIT. */
export async function until(what, check) {
  const deadline = Date.now() + LIMIT;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Whether the file at `path` holds exactly `content` (false while it cannot be read). */
export async function fileIs(path, content) {
  try {
    return readFileSync(path, "utf8") === content;
  } catch {
    return false;
  }
}

/** Runs `peerfold --home HOME ARGS…` to the end; its output, trimmed. */
export function peerfold(home, ...args) {
  return execFileSync(BIN, ["--home", home, ...args], { encoding: "utf8" }).trim();
}

/** Every process `spawnLogged` started, for `stopAll`. */
const children = [];

/** Starts a process whose stdout is collected in its `log`; `stopAll` stops it. */
export function spawnLogged(name, cmd, args, env = {}) {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  const proc = { name, child, log: "" };
  children.push(proc);
  child.stdout.on("data", (d) => (proc.log += d));
  return proc;
}

/**
 * Starts a process; resolves once `ready(line)` is true for a line of its stderr (every line is
 * passed, and kept in its `log`), fails if it exits or LIMIT passes first.
 */
export function start(name, cmd, args, ready, env = {}) {
  const proc = spawnLogged(name, cmd, args, env);
  const lines = createInterface({ input: proc.child.stderr });
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${name} did not start:\n${proc.log}`)), LIMIT);
    proc.child.once("exit", (code) => fail(new Error(`${name} exited with ${code}:\n${proc.log}`)));
    lines.on("line", (line) => {
      proc.log += line + "\n";
      if (ready(line)) {
        clearTimeout(timer);
        ok(proc);
      }
    });
  });
}

/** Stops every process started here, the newest first: SIGINT, then SIGKILL after 10 s. */
export async function stopAll() {
  for (const p of children.reverse()) {
    if (p.child.exitCode === null && p.child.signalCode === null) {
      const exited = new Promise((r) => p.child.once("exit", r));
      p.child.kill("SIGINT");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
    }
  }
}
