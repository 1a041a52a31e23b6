// How numbers, times and states read on screen.
import type { FolderStatus } from "./client";

export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function rate(bps: number | null | undefined): string {
  return bps ? `${bytes(bps)}/s` : "—";
}

export function duration(s: number | null | undefined): string {
  if (s === null || s === undefined) return "—";
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

export function shortId(id: string): string {
  return id.split("-")[0] ?? id;
}

/** How complete this device's copy of the folder is, 0–100. */
export function percent(f: FolderStatus): number {
  if (f.global.bytes === 0) return f.need.items === 0 ? 100 : 0;
  return Math.max(0, Math.min(100, 100 * (1 - f.need.bytes / f.global.bytes)));
}

/** The folder's state in words; "Up to date" when idle with nothing needed. */
export function folderState(f: FolderStatus): { text: string; tone: "ok" | "busy" | "warn" | "bad" | "off" } {
  switch (f.state) {
    case "idle":
      return f.need.items === 0
        ? { text: "Up to date", tone: "ok" }
        : { text: `Out of sync (${f.need.items} items)`, tone: "warn" };
    case "scanning":
      return { text: "Scanning", tone: "busy" };
    case "syncing":
      return { text: `Syncing ${percent(f).toFixed(0)} %`, tone: "busy" };
    case "error":
      return { text: "Error", tone: "bad" };
    case "waiting-for-confirmation":
      return { text: "Waiting for you to confirm deletions", tone: "warn" };
    case "paused":
      return { text: "Paused", tone: "off" };
    case "stopped":
      return { text: "Stopped", tone: "off" };
    default:
      return { text: f.state, tone: "busy" };
  }
}

export function when(rfc3339: string): string {
  const d = new Date(rfc3339);
  return Number.isNaN(d.getTime()) ? rfc3339 : d.toLocaleString();
}

export function unixWhen(seconds: number): string {
  return new Date(seconds * 1000).toLocaleString();
}

/** "1 file", "2 files". */
export function count(n: number, noun: string, plural = `${noun}s`): string {
  return `${n} ${n === 1 ? noun : plural}`;
}

/** KiB/s as a limit: `512 KiB/s`, or `unlimited` for 0. */
export function kibps(n: number): string {
  return n === 0 ? "unlimited" : `${n} KiB/s`;
}
