// The shell: signing in, the navigation, the routes (plain paths; the server answers every
// non-API path with this page) and the live data every screen reads.
import { createContext, useCallback, useContext, useEffect, useRef, useState } from "react";
import { ApiError, Client, errorText, isTauri, type Device, type Folder, type Pending, type Status, type SystemInfo } from "./client";
import { useAction, type Action } from "./components";
import { SignIn } from "./screens/SignIn";
import { Overview } from "./screens/Overview";
import { ThisDevice } from "./screens/ThisDevice";
import { AddDevice } from "./screens/AddDevice";
import { AddFolder } from "./screens/AddFolder";
import { FolderDetails } from "./screens/FolderDetails";
import { Settings } from "./screens/Settings";
import { Wizard } from "./screens/Wizard";

export const client = new Client();

/** Everything the overview-like screens show, refreshed on every engine event. */
export interface Live {
  system?: SystemInfo;
  status?: Status;
  devices: Device[];
  folders: Folder[];
  pending: Pending;
  error?: string;
  /** Whether the live event stream is connected. */
  streaming: boolean;
  refresh: () => Promise<void>;
}

const LiveContext = createContext<Live | null>(null);

export function useLive(): Live {
  const live = useContext(LiveContext);
  if (!live) throw new Error("useLive outside the app");
  return live;
}

/** An action, and a way to run a call with it that refreshes the live state when it worked. */
export function useLiveAction(): [Action, (call: () => Promise<unknown>) => Promise<void>] {
  const live = useLive();
  const action = useAction();
  const act = async (call: () => Promise<unknown>) => {
    if (await action.run(call)) await live.refresh();
  };
  return [action, act];
}

// ---------- routing ----------

const NavContext = createContext<(path: string) => void>(() => {});

export function useNavigate() {
  return useContext(NavContext);
}

export function Link(props: { to: string; children: React.ReactNode; className?: string }) {
  const navigate = useNavigate();
  return (
    <a
      href={props.to}
      className={props.className}
      onClick={(e) => {
        if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
        e.preventDefault();
        navigate(props.to);
      }}
    >
      {props.children}
    </a>
  );
}

function usePath(): [string, (path: string) => void] {
  const [path, setPath] = useState(window.location.pathname);
  useEffect(() => {
    const onPop = () => setPath(window.location.pathname);
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, []);
  const navigate = useCallback((to: string) => {
    if (to !== window.location.pathname) window.history.pushState(null, "", to);
    setPath(to);
    window.scrollTo(0, 0);
  }, []);
  return [path, navigate];
}

// ---------- signing in ----------

type SessionState = "checking" | "signed-out" | "signed-in";

/** Trades a `#key=` in the address (from `peerfold gui url`) for a session, once, and wipes it. */
async function signInFromFragment(): Promise<string | undefined> {
  const match = /^#key=(.+)$/.exec(window.location.hash);
  if (!match) return undefined;
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
  try {
    await client.signIn({ api_key: decodeURIComponent(match[1]) });
    return undefined;
  } catch (e) {
    return `The sign-in link did not work: ${errorText(e)}`;
  }
}

export function App() {
  const [session, setSession] = useState<SessionState>("checking");
  const [signInError, setSignInError] = useState<string>();
  const [path, navigate] = usePath();

  const check = useCallback(async () => {
    try {
      const s = await client.session();
      setSession(s.signed_in ? "signed-in" : "signed-out");
    } catch (e) {
      setSignInError(errorText(e));
      setSession("signed-out");
    }
  }, []);

  useEffect(() => {
    void (async () => {
      const failed = await signInFromFragment();
      if (failed) setSignInError(failed);
      await check();
    })();
  }, [check]);

  if (session === "checking") return <p className="loading">Loading…</p>;
  if (session === "signed-out") {
    return <SignIn initialError={signInError} onSignedIn={() => setSession("signed-in")} />;
  }
  return (
    <NavContext.Provider value={navigate}>
      <LiveProvider onSignedOut={() => setSession("signed-out")}>
        <Shell path={path} onSignOut={() => setSession("signed-out")} />
      </LiveProvider>
    </NavContext.Provider>
  );
}

function LiveProvider(props: { children: React.ReactNode; onSignedOut: () => void }) {
  const [data, setData] = useState<Omit<Live, "refresh" | "streaming">>({
    devices: [],
    folders: [],
    pending: { devices: [], folders: [] },
  });
  const [streaming, setStreaming] = useState(false);
  const { onSignedOut } = props;
  const inFlight = useRef(false);
  const again = useRef(false);

  const refresh = useCallback(async () => {
    // One refresh at a time; a burst of events while one runs makes one more afterwards.
    if (inFlight.current) {
      again.current = true;
      return;
    }
    inFlight.current = true;
    try {
      do {
        again.current = false;
        try {
          const [system, status, devices, folders, pending] = await Promise.all([
            client.system(),
            client.status(),
            client.devices(),
            client.folders(),
            client.pending(),
          ]);
          setData({ system, status, devices, folders, pending, error: undefined });
        } catch (e) {
          if (e instanceof ApiError && e.status === 401) {
            onSignedOut();
            return;
          }
          setData((d) => ({ ...d, error: errorText(e) }));
        }
      } while (again.current);
    } finally {
      inFlight.current = false;
    }
  }, [onSignedOut]);

  useEffect(() => {
    void refresh();
    let timer: number | undefined;
    const unsubscribe = client.events((event) => {
      if (event.type === "connected") setStreaming(true);
      if (event.type === "connection-lost") setStreaming(false);
      // Events come in bursts during a sync: refetch at most every 300 ms.
      if (timer === undefined) {
        timer = window.setTimeout(() => {
          timer = undefined;
          void refresh();
        }, 300);
      }
    });
    // Connections and transfer rates change without events: a slow poll keeps them current.
    const poll = window.setInterval(() => void refresh(), 3000);
    return () => {
      unsubscribe();
      window.clearInterval(poll);
      if (timer !== undefined) window.clearTimeout(timer);
    };
  }, [refresh]);

  return <LiveContext.Provider value={{ ...data, streaming, refresh }}>{props.children}</LiveContext.Provider>;
}

/**
 * Whether the desktop app's first-run wizard shows: decided once the first data arrived (a home
 * with no folders and no devices is fresh), then kept until the wizard is done, so adding a
 * device in it does not close it.
 */
function useFirstRun(live: Live): [boolean, () => void] {
  const [wizard, setWizard] = useState<"unknown" | "show" | "done">(isTauri() ? "unknown" : "done");
  const loaded = live.status !== undefined;
  const fresh = live.folders.length === 0 && live.devices.length === 0;
  useEffect(() => {
    if (wizard === "unknown" && loaded) setWizard(fresh ? "show" : "done");
  }, [wizard, loaded, fresh]);
  return [wizard === "show", () => setWizard("done")];
}

function Shell(props: { path: string; onSignOut: () => void }) {
  const live = useLive();
  const navigate = useNavigate();
  const [firstRun, finishFirstRun] = useFirstRun(live);
  const { path } = props;
  let screen: React.ReactNode;
  let m: RegExpExecArray | null;
  if (path === "/" || path === "") screen = <Overview />;
  else if (path === "/this-device") screen = <ThisDevice />;
  else if (path === "/devices/add") screen = <AddDevice />;
  else if (path === "/folders/add") screen = <AddFolder />;
  else if ((m = /^\/folders\/(.+)$/.exec(path))) screen = <FolderDetails id={decodeURIComponent(m[1])} />;
  else if (path === "/settings") screen = <Settings onSignOut={props.onSignOut} />;
  else screen = <p role="alert" className="error">There is no page {path}.</p>;

  const item = (to: string, label: string) => (
    <li>
      <Link to={to} className={path === to ? "active" : undefined}>
        {label}
      </Link>
    </li>
  );
  return (
    <div className="shell">
      <header>
        <Link to="/" className="brand">
          Peerfold
        </Link>
        <span className="device-name">{live.system?.name}</span>
        <span className={live.streaming ? "live on" : "live"} title="Live updates">
          {live.streaming ? "live" : "offline"}
        </span>
      </header>
      <nav aria-label="Main">
        <ul>
          {item("/", "Overview")}
          {item("/this-device", "This device")}
          {item("/devices/add", "Add a device")}
          {item("/folders/add", "Share a folder")}
          {item("/settings", "Settings")}
        </ul>
      </nav>
      <main>
        {live.error && (
          <p role="alert" className="error">
            {live.error}
          </p>
        )}
        {firstRun ? (
          <Wizard
            onDone={() => {
              finishFirstRun();
              navigate("/");
            }}
          />
        ) : (
          screen
        )}
      </main>
    </div>
  );
}
