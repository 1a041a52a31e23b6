// The one way the UI reaches Peerfold: the engine's typed service requests (`ServiceRequest`,
// the same the CLI sends) over a `Transport`. The browser uses `HttpTransport` (`POST /api/call`
// with the session cookie, server-sent events); inside the desktop app (`isTauri()`) it is
// `TauriTransport` (the Tauri command `call`, events as Tauri events). No screen calls fetch
// or invoke itself.

import { invoke, isTauri as tauriRuntime } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";

import type { components } from "./api.gen";

// ---------- resources (the JSON shapes of /api/) ----------
//
// Generated from the API's OpenAPI document into api.gen.ts (`npm run gen:api`; CI fails when
// the committed file differs from what the server documents). The names here are the UI's.

type Schemas = components["schemas"];

export type FolderType = Schemas["FolderType"];
export type Versioning = Schemas["Versioning"];
export type SystemInfo = Schemas["SystemInfo"];
export type SessionInfo = Schemas["SessionInfo"];
export type Counts = Schemas["Counts"];
export type NeedCounts = Schemas["NeedCounts"];
export type Completion = Schemas["Completion"];
export type FolderStatus = Schemas["FolderStatus"];
export type DeviceStatus = Schemas["DeviceStatus"];
export type Status = Schemas["Status"];
export type Device = Schemas["DeviceView"];
export type Folder = Schemas["FolderView"];
export type PendingDevice = Schemas["PendingDevice"];
export type PendingFolder = Schemas["PendingFolder"];
export type Pending = Schemas["Pending"];
/** What a change did, in one sentence. */
export type Edited = Schemas["Edited"];
/** One configuration change as the CLI makes it (`POST /api/config/edits`). */
export type Edit = Schemas["Edit"];
export type Day = Schemas["Day"];
export type FileStamp = Schemas["FileStamp"];
export type Conflict = Schemas["ConflictView"];
export type Keep = Schemas["Keep"];
export type FileVersions = Schemas["VersionedFile"];
export type NeededItem = Schemas["NeededItem"];
export type FailedItem = Schemas["FailedItem"];
/** A page of a directory's children in a folder's global tree (selective sync). */
export type BrowsePage = Schemas["BrowsePage"];
export type BrowseItem = Schemas["BrowseItem"];
export type ScanSummary = Schemas["ScanSummary"];
export type IgnoreLines = Schemas["IgnoreLines"];
export type Discovery = Schemas["Discovery"];
export type LogLine = Schemas["LogLine"];
export type NewDevice = Schemas["NewDevice"];
export type DevicePatch = Schemas["DevicePatch"];
export type NewFolder = Schemas["NewFolder"];
export type FolderPatch = Schemas["FolderPatch"];
export type SignIn = Schemas["SignIn"];
export type InviteLink = Schemas["InviteLink"];
export type InForce = Schemas["InForce"];
export type PauseReason = Schemas["PauseReason"];
export type ScheduleRule = Schemas["ScheduleRule"];
/** Any request of the typed service (`POST /api/call`) and its answer. */
export type ServiceRequest = Schemas["Request"];
export type ServiceResponse = Schemas["Response"];

/**
 * One item of the live stream: an engine event (`type` says which), `lagged` when this client
 * fell behind and missed some, or the transport's own `connected` and `connection-lost`.
 */
export type EngineEvent =
  | Schemas["Event"]
  | { type: "lagged"; missed: number }
  | { type: "connected" }
  | { type: "connection-lost" };

// ---------- transport ----------

/** An API error: `message` is the API's own sentence; `status` its HTTP status (0: unreachable). */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** The service's refusal (`{"kind": "not-found", "error": "..."}`) and its HTTP status. */
const KIND_STATUS: Record<string, number> = { "bad-request": 400, "not-found": 404, "needs-daemon": 409, failed: 500 };

export interface Transport {
  /** One service request; resolves to its typed answer, or rejects with an ApiError. */
  call(request: ServiceRequest): Promise<ServiceResponse>;
  /** Whether this UI may call (a browser signs in; the desktop app always may). */
  session(): Promise<SessionInfo>;
  signIn(how: SignIn): Promise<void>;
  signOut(): Promise<void>;
  /** This device's ID as a QR code, as an image source. */
  qrImage(): Promise<string>;
  /** Live events until the returned function is called. */
  subscribe(onEvent: (event: EngineEvent) => void): () => void;
}

/** The browser's transport: same-origin fetch (the session cookie rides along) and EventSource. */
export class HttpTransport implements Transport {
  constructor(private readonly base = "") {}

  call(request: ServiceRequest): Promise<ServiceResponse> {
    return this.request<ServiceResponse>("POST", "/api/call", request);
  }

  session = () => this.request<SessionInfo>("GET", "/api/session");
  signIn = (how: SignIn) => this.request<void>("POST", "/api/session", how);
  signOut = () => this.request<void>("DELETE", "/api/session");
  qrImage = () => Promise.resolve(this.base + "/api/system/qr.svg");

  private async request<T>(method: "GET" | "POST" | "DELETE", path: string, body?: unknown): Promise<T> {
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
 * The desktop app's transport: the Tauri command `call` hands each request to the engine's
 * service in-process (no TCP port, no HTTP), and engine events arrive as the Tauri event
 * `TAURI_EVENT`. Nobody signs in: the window is the user's own.
 */
export class TauriTransport implements Transport {
  async call(request: ServiceRequest): Promise<ServiceResponse> {
    try {
      return await invoke<ServiceResponse>("call", { request });
    } catch (e) {
      const refused = e as { kind?: unknown; error?: unknown } | string;
      if (typeof refused === "object" && refused !== null && typeof refused.error === "string") {
        const status = typeof refused.kind === "string" ? (KIND_STATUS[refused.kind] ?? 500) : 500;
        throw new ApiError(sentence(refused.error), status);
      }
      throw new ApiError(typeof refused === "string" ? sentence(refused) : "Peerfold is not reachable.", 0);
    }
  }

  session = (): Promise<SessionInfo> => Promise.resolve({ signed_in: true, password_set: false, user: "" });
  signIn = (): Promise<void> => Promise.resolve();
  signOut = (): Promise<void> => Promise.resolve();

  qrImage = async (): Promise<string> => {
    let svg: string;
    try {
      svg = await invoke<string>("qr_svg");
    } catch (e) {
      throw new ApiError(typeof e === "string" ? sentence(e) : "Peerfold is not reachable.", 0);
    }
    return `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
  };

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

// The SSE event names the server sends (each event's `type`): a named event reaches only the
// listeners for its name, so every one is listed, and the compiler says when one is missing.
const EVENT_NAMES = Object.keys({
  "state-changed": true,
  "local-index-updated": true,
  pulled: true,
  "pull-issue": true,
  "scan-issue": true,
  reverted: true,
  "mass-delete-held": true,
  "device-pending": true,
  "folder-offered": true,
  "device-connected": true,
  "device-disconnected": true,
  lagged: true,
} satisfies Record<Exclude<EngineEvent["type"], "connected" | "connection-lost">, true>);

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

type Answer = ServiceResponse["type"];
type Body<K extends Answer> = Extract<ServiceResponse, { type: K }>["body"];

export class Client {
  constructor(readonly transport: Transport = isTauri() ? new TauriTransport() : new HttpTransport()) {}

  /** Any request of the typed service and its answer. */
  call = (request: ServiceRequest) => this.transport.call(request);

  /** `request`'s answer, which must be of type `expected`. */
  private async ask<K extends Answer>(request: ServiceRequest, expected: K): Promise<Body<K>> {
    const answer = await this.transport.call(request);
    if (answer.type !== expected) throw new ApiError(`Unexpected answer: ${answer.type}.`, 500);
    return answer.body as Body<K>;
  }

  // session
  session = () => this.transport.session();
  signIn = (how: SignIn) => this.transport.signIn(how);
  signOut = () => this.transport.signOut();

  // this device and status
  system = () => this.ask({ command: "system" }, "system");
  /** The QR code of this device's ID as an image source. */
  qrImage = () => this.transport.qrImage();
  /** Names this device (peers see the new name when they next connect). */
  setName = (name: string) => this.edit({ edit: "set-name", name: name.trim() });
  /** One configuration change as the CLI makes it. */
  edit = (edit: Edit) => this.ask({ command: "edit", edit }, "edited");
  status = () => this.ask({ command: "status" }, "status");

  // devices
  devices = () => this.ask({ command: "devices" }, "devices");
  addDevice = (d: NewDevice) =>
    this.ask(
      {
        command: "add-device",
        device: d.id,
        name: d.name,
        addresses: d.addresses,
        max_send_kibps: d.max_send_kibps,
        max_recv_kibps: d.max_recv_kibps,
      },
      "edited",
    );
  editDevice = (id: string, p: DevicePatch) => this.ask({ command: "update-device", device: id, ...p }, "edited");
  /** Whether the folders device `id` offers are added without asking (under the default folder path). */
  setAutoAccept = (id: string, autoAccept: boolean) =>
    this.edit({ edit: "auto-accept-folders", id, auto_accept: autoAccept });
  /** Whether device `id` introduces the devices it shares folders with (Syncthing's introducer). */
  setIntroducer = (id: string, introducer: boolean) => this.edit({ edit: "introducer", id, introducer });
  removeDevice = (id: string) => this.ask({ command: "remove-device", device: id }, "edited");

  // bandwidth and pausing every device
  /**
   * The global limits in KiB/s (0: unlimited), whether they apply on the LAN, and whether every
   * device pauses on a metered network or on battery; unset ones stay.
   */
  setLimits = (l: {
    max_send_kibps?: number;
    max_recv_kibps?: number;
    limit_lan?: boolean;
    pause_on_metered?: boolean;
    pause_on_battery?: boolean;
  }) => this.edit({ edit: "set-limits", ...l });
  /** Replaces the whole `[[options.schedule]]` list. */
  setSchedule = (schedule: ScheduleRule[]) => this.edit({ edit: "set-limits", schedule });
  /** Pauses every device for `seconds`, or until resumed when `null`. */
  pauseAll = (seconds: number | null) =>
    this.edit({
      edit: "pause-all",
      pause: seconds === null ? "until-resumed" : { until: Math.floor(Date.now() / 1000) + seconds },
    });
  resumeAll = () => this.edit({ edit: "pause-all" });

  // folders
  folders = () => this.ask({ command: "folders" }, "folders");
  addFolder = (f: NewFolder) => {
    const { id, ...rest } = f;
    return this.ask({ command: "add-folder", folder: id, ...rest }, "edited");
  };
  editFolder = (id: string, p: FolderPatch) => this.ask({ command: "update-folder", folder: id, ...p }, "edited");
  removeFolder = (id: string) => this.ask({ command: "remove-folder", folder: id }, "edited");
  scanFolder = (id: string) => this.ask({ command: "scan", folder: id }, "scanned");
  ignores = (id: string) => this.ask({ command: "ignores", folder: id }, "ignores");
  setIgnores = (id: string, lines: string[]) => this.ask({ command: "set-ignores", folder: id, lines }, "ignores");
  conflicts = (id: string): Promise<Conflict[]> => this.ask({ command: "conflicts", folder: id }, "conflicts");
  resolveConflict = (id: string, conflict: string, keep: Keep) =>
    this.ask({ command: "resolve-conflict", folder: id, conflict, keep }, "edited");
  versions = (id: string) => this.ask({ command: "versions", folder: id }, "versions");
  restoreVersion = (id: string, path: string, version: string) =>
    this.ask({ command: "restore", folder: id, path, version }, "edited");
  needed = (id: string) => this.ask({ command: "needed", folder: id }, "needed");
  failed = (id: string) => this.ask({ command: "failed-items", folder: id }, "failed-items");
  /** A page of directory `dir`'s children in folder `id`'s global tree, after the child named `after`. */
  browse = (id: string, dir: string, after?: string | null): Promise<BrowsePage> =>
    this.ask({ command: "browse", folder: id, dir, after: after ?? null, limit: null }, "browse");
  /** Selective sync: syncs `paths` here again. */
  select = (id: string, paths: string[]) => this.ask({ command: "select", folder: id, paths }, "edited");
  /** Selective sync: stops syncing `paths` here, keeping the local copy unless `deleteLocal` (then: the trash can). */
  deselect = (id: string, paths: string[], deleteLocal: boolean) =>
    this.ask({ command: "deselect", folder: id, paths, delete_local: deleteLocal }, "edited");

  // pending devices and folder offers
  pending = () => this.ask({ command: "pending" }, "pending");
  acceptDevice = (id: string, name?: string, addresses?: string[]) =>
    this.ask({ command: "accept-device", device: id, name, addresses }, "edited");
  dismissDevice = (id: string) => this.ask({ command: "dismiss-device", device: id }, "edited");
  acceptFolder = (folder: string, device: string, path?: string, create = true) =>
    this.ask({ command: "accept-folder", folder, device, path, create }, "edited");
  dismissFolder = (folder: string, device: string) =>
    this.ask({ command: "dismiss-folder", folder, device }, "edited");

  // invitations
  /** Makes an invitation link offering `folders`. */
  invite = (folders: string[], expires_s: number, uses = 1): Promise<InviteLink> =>
    this.ask({ command: "invite", folders, expires_s, uses }, "invite");
  /** Joins the device that made `link`; its folders go under the home folder unless `paths` says. */
  join = (link: string, paths: Record<string, string> = {}): Promise<Edited> =>
    this.ask({ command: "join", link: link.trim(), paths }, "edited");

  events = (onEvent: (event: EngineEvent) => void) => this.transport.subscribe(onEvent);
}
