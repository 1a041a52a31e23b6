// The one way the UI reaches Peerfold: typed calls over a `Transport`. The browser uses
// `HttpTransport` (fetch with the session cookie, server-sent events); inside the desktop app
// (`isTauri()`) it is `TauriTransport` (one Tauri command, events as Tauri events). No screen
// calls fetch itself.

import { invoke, isTauri as tauriRuntime } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";

// ---------- resources (the JSON shapes of /api/, see /api/openapi.json) ----------

export type FolderType = "send-receive" | "send-only" | "receive-only";

export type Versioning = { type: "none" } | { type: "trashcan"; keep_days: number };

export interface SystemInfo {
  id: string;
  name: string;
  version: string;
  uptime_s: number;
}

export interface SessionInfo {
  signed_in: boolean;
  password_set: boolean;
  user: string | null;
}

export interface Counts {
  files: number;
  directories: number;
  bytes: number;
}

export interface NeedCounts {
  items: number;
  bytes: number;
}

export interface Completion {
  device: string;
  percent: number;
  need: NeedCounts;
}

export interface FolderStatus {
  id: string;
  label: string;
  path: string;
  type: FolderType;
  /** idle, scanning, syncing, error, waiting-for-confirmation, paused or stopped. */
  state: string;
  error?: string;
  receive_only_changes?: number;
  held_deletes?: { deleted: number; total: number };
  local: Counts;
  global: Counts;
  need: NeedCounts;
  devices: Completion[];
  /** Bytes per second being pulled (newer daemons). */
  rate_bps?: number;
  /** Seconds until the folder is complete, if known (newer daemons). */
  eta_s?: number | null;
}

export interface DeviceStatus {
  id: string;
  name: string;
  paused: boolean;
  connected: boolean;
  address?: string;
  transport?: "tcp" | "quic";
  client?: string;
  bytes_in?: number;
  bytes_out?: number;
  rate_in_bps?: number;
  rate_out_bps?: number;
}

export interface Status {
  device: string;
  running: boolean;
  folders: FolderStatus[];
  devices: DeviceStatus[];
}

export interface Device {
  id: string;
  name: string;
  addresses: string[];
  paused: boolean;
  folders: string[];
}

export interface Folder {
  id: string;
  label: string;
  path: string;
  type: FolderType;
  devices: string[];
  versioning: Versioning;
  paused: boolean;
  rescan_interval_s?: number;
  watch?: boolean;
}

export interface PendingDevice {
  device: string;
  name: string;
  address: string;
  seen_at: number;
}

export interface PendingFolder {
  device: string;
  folder: string;
  label: string;
  seen_at: number;
}

export interface Pending {
  devices: PendingDevice[];
  folders: PendingFolder[];
}

/** What a change did, in one sentence. */
export interface Edited {
  changed: boolean;
  message: string;
}

export interface FileStamp {
  size: number;
  modified: string;
}

export interface Conflict {
  path: string;
  conflict: string;
  device: string;
  device_name: string | null;
  current: FileStamp;
  copy: FileStamp;
}

export interface FileVersions {
  path: string;
  versions: { version: string; modified: string; size: number }[];
}

export interface NeededItem {
  path: string;
  size: number;
  deleted: boolean;
}

export interface FailedItem {
  path: string;
  error: string;
  at: string;
}

export interface ScanSummary {
  [key: string]: unknown;
}

/** One engine event from the live stream; `type` says which. */
export interface EngineEvent {
  type: string;
  folder?: string;
  [key: string]: unknown;
}

export interface NewDevice {
  id: string;
  name?: string;
  addresses?: string[];
}

export interface DevicePatch {
  name?: string;
  addresses?: string[];
  paused?: boolean;
}

export interface NewFolder {
  id: string;
  path: string;
  label?: string;
  type?: FolderType;
  devices?: string[];
  versioning?: Versioning;
  create?: boolean;
}

export interface FolderPatch {
  label?: string;
  devices?: string[];
  versioning?: Versioning;
  paused?: boolean;
  rescan_interval_s?: number;
  watch?: boolean;
}

export type SignIn = { api_key: string } | { user: string; password: string };

// ---------- transport ----------

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** An API error: `message` is the API's own sentence. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export interface Transport {
  /** One call; resolves to the parsed JSON answer (undefined for an empty one), or rejects with an ApiError. */
  request<T>(method: Method, path: string, body?: unknown): Promise<T>;
  /** Live events until the returned function is called. */
  subscribe(onEvent: (event: EngineEvent) => void): () => void;
}

/** The browser's transport: same-origin fetch (the session cookie rides along) and EventSource. */
export class HttpTransport implements Transport {
  constructor(private readonly base = "") {}

  async request<T>(method: Method, path: string, body?: unknown): Promise<T> {
    let response: Response;
    try {
      response = await fetch(this.base + path, {
        method,
        credentials: "same-origin",
        headers: body === undefined ? {} : { "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError("Peerfold is not reachable. Is the daemon running?", 0);
    }
    const text = await response.text();
    let json: unknown = undefined;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
    }
    if (!response.ok) {
      const said = (json as { error?: unknown } | undefined)?.error;
      throw new ApiError(
        typeof said === "string" ? sentence(said) : `The request failed (HTTP ${response.status}).`,
        response.status,
      );
    }
    return json as T;
  }

  subscribe(onEvent: (event: EngineEvent) => void): () => void {
    const source = new EventSource(this.base + "/api/events", { withCredentials: true });
    const handle = (message: MessageEvent) => {
      try {
        onEvent(JSON.parse(message.data) as EngineEvent);
      } catch {
        // A keep-alive or a malformed line: nothing to show.
      }
    };
    // The server names each event by its type; listen for every name through `message` and
    // the names the engine sends.
    source.onmessage = handle;
    for (const name of EVENT_NAMES) source.addEventListener(name, handle as EventListener);
    source.onerror = () => onEvent({ type: "connection-lost" });
    source.onopen = () => onEvent({ type: "connected" });
    return () => source.close();
  }
}


/** Whether the UI runs inside the Peerfold desktop app (Tauri) rather than a browser. */
export function isTauri(): boolean {
  return tauriRuntime();
}

/** The Tauri event the desktop app forwards engine events on (same JSON as /api/events). */
export const TAURI_EVENT = "peerfold://event";

/**
 * The desktop app's transport: one Tauri command, `api`, forwards each call to the control API
 * in-process (no TCP port), and engine events arrive as the Tauri event `TAURI_EVENT`.
 */
export class TauriTransport implements Transport {
  async request<T>(method: Method, path: string, body?: unknown): Promise<T> {
    let reply: { status: number; body: unknown };
    try {
      reply = await invoke<{ status: number; body: unknown }>("api", { method, path, body: body ?? null });
    } catch (e) {
      throw new ApiError(typeof e === "string" ? sentence(e) : "Peerfold is not reachable.", 0);
    }
    if (reply.status >= 400) {
      const said = (reply.body as { error?: unknown } | null)?.error;
      throw new ApiError(
        typeof said === "string" ? sentence(said) : `The request failed (HTTP ${reply.status}).`,
        reply.status,
      );
    }
    return (reply.body ?? undefined) as T;
  }

  subscribe(onEvent: (event: EngineEvent) => void): () => void {
    let unlisten: (() => void) | undefined;
    let stopped = false;
    listen<EngineEvent>(TAURI_EVENT, (e) => onEvent(e.payload)).then(
      (stop) => {
        if (stopped) stop();
        else {
          unlisten = stop;
          onEvent({ type: "connected" });
        }
      },
      () => onEvent({ type: "connection-lost" }),
    );
    return () => {
      stopped = true;
      unlisten?.();
    };
  }
}

/** Start at login, in the desktop app only. */
export const autostart = {
  get: () => invoke<boolean>("autostart_get"),
  set: (enabled: boolean) => invoke<boolean>("autostart_set", { enabled }),
};

const EVENT_NAMES = [
  "state-changed",
  "local-index-updated",
  "pulled",
  "pull-issue",
  "scan-issue",
  "reverted",
  "mass-delete-held",
  "lagged",
];

/** The API's text as a sentence: capital first letter, full stop at the end. */
export function sentence(text: string): string {
  const t = text.trim();
  if (!t) return t;
  const capital = t[0].toUpperCase() + t.slice(1);
  return /[.!?]$/.test(capital) ? capital : capital + ".";
}

/** Any thrown value as a sentence for the screen (never a stack trace). */
export function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return sentence(e.message);
  return "Something went wrong.";
}

// ---------- the typed client ----------

const enc = encodeURIComponent;

export class Client {
  constructor(readonly transport: Transport = isTauri() ? new TauriTransport() : new HttpTransport()) {}

  // session
  session = () => this.transport.request<SessionInfo>("GET", "/api/session");
  signIn = (how: SignIn) => this.transport.request<void>("POST", "/api/session", how);
  signOut = () => this.transport.request<void>("DELETE", "/api/session");

  // this device and status
  system = () => this.transport.request<SystemInfo>("GET", "/api/system");
  qrUrl = () => "/api/system/qr.svg";
  /** The QR code as an image source: its URL over HTTP, the SVG itself as a data URL otherwise. */
  qrImage = async (): Promise<string> => {
    if (this.transport instanceof HttpTransport) return this.qrUrl();
    const svg = await this.transport.request<string>("GET", "/api/system/qr.svg");
    return `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
  };
  /** Names this device (peers see the new name when they next connect). */
  setName = (name: string) =>
    this.transport.request<Edited>("POST", "/api/config/edits", { edit: "set-name", name: name.trim() });
  status = () => this.transport.request<Status>("GET", "/api/status");

  // devices
  devices = () => this.transport.request<Device[]>("GET", "/api/devices");
  addDevice = (d: NewDevice) => this.transport.request<Edited>("POST", "/api/devices", d);
  editDevice = (id: string, p: DevicePatch) =>
    this.transport.request<Edited>("PATCH", `/api/devices/${enc(id)}`, p);
  removeDevice = (id: string) => this.transport.request<Edited>("DELETE", `/api/devices/${enc(id)}`);

  // folders
  folders = () => this.transport.request<Folder[]>("GET", "/api/folders");
  addFolder = (f: NewFolder) => this.transport.request<Edited>("POST", "/api/folders", f);
  editFolder = (id: string, p: FolderPatch) =>
    this.transport.request<Edited>("PATCH", `/api/folders/${enc(id)}`, p);
  removeFolder = (id: string) => this.transport.request<Edited>("DELETE", `/api/folders/${enc(id)}`);
  scanFolder = (id: string) => this.transport.request<ScanSummary>("POST", `/api/folders/${enc(id)}/scan`);
  ignores = (id: string) =>
    this.transport.request<{ lines: string[] }>("GET", `/api/folders/${enc(id)}/ignores`);
  setIgnores = (id: string, lines: string[]) =>
    this.transport.request<{ lines: string[] }>("PUT", `/api/folders/${enc(id)}/ignores`, { lines });
  conflicts = (id: string) => this.transport.request<Conflict[]>("GET", `/api/folders/${enc(id)}/conflicts`);
  resolveConflict = (id: string, conflict: string, keep: "current" | "copy") =>
    this.transport.request<Edited>("POST", `/api/folders/${enc(id)}/conflicts/resolve`, { conflict, keep });
  versions = (id: string) => this.transport.request<FileVersions[]>("GET", `/api/folders/${enc(id)}/versions`);
  restoreVersion = (id: string, path: string, version: string) =>
    this.transport.request<Edited>("POST", `/api/folders/${enc(id)}/versions/restore`, { path, version });
  needed = (id: string) => this.transport.request<NeededItem[]>("GET", `/api/folders/${enc(id)}/needed`);
  failed = (id: string) => this.transport.request<FailedItem[]>("GET", `/api/folders/${enc(id)}/errors`);

  // pending devices and folder offers
  pending = () => this.transport.request<Pending>("GET", "/api/pending");
  acceptDevice = (id: string, name?: string, addresses?: string[]) =>
    this.transport.request<Edited>("POST", `/api/pending/devices/${enc(id)}/accept`, { name, addresses });
  dismissDevice = (id: string) =>
    this.transport.request<Edited>("POST", `/api/pending/devices/${enc(id)}/dismiss`);
  acceptFolder = (folder: string, device: string, path?: string, create = true) =>
    this.transport.request<Edited>("POST", `/api/pending/folders/${enc(folder)}/accept`, {
      device,
      path,
      create,
    });
  dismissFolder = (folder: string, device: string) =>
    this.transport.request<Edited>("POST", `/api/pending/folders/${enc(folder)}/dismiss?device=${enc(device)}`);

  events = (onEvent: (event: EngineEvent) => void) => this.transport.subscribe(onEvent);
}
