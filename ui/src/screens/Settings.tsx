import { useEffect, useState } from "react";
import { client, useLive, useLiveAction } from "../App";
import { autostart, errorText, isTauri } from "../client";
import { kibps } from "../format";
import { Outcome, useAction } from "../components";

/** This device's name, how signing in works (browser) or starting at login (desktop app). */
export function Settings(props: { onSignOut: () => void }) {
  const action = useAction();
  const app = isTauri();
  return (
    <>
      <h1>Settings</h1>
      <DeviceName />
      <Bandwidth />
      {app && <StartAtLogin />}
      {!app && (
        <section className="card">
          <h2>Web UI password</h2>
          <p>
            Set or change the password with <code>peerfold gui password --user NAME</code> on this device (with the
            daemon stopped). A password is required before the web UI may listen on anything but this machine. Without
            one, <code>peerfold gui url</code> prints a link that signs a browser in.
          </p>
          <div className="actions">
            <button
              type="button"
              onClick={async () => {
                if (await action.run(() => client.signOut())) props.onSignOut();
              }}
            >
              Sign out
            </button>
          </div>
          <Outcome action={action} />
        </section>
      )}
    </>
  );
}

function DeviceName() {
  const live = useLive();
  const [action, act] = useLiveAction();
  const current = live.system?.name ?? "";
  const [name, setName] = useState(current);
  useEffect(() => setName(current), [current]);
  return (
    <form
      className="card form"
      aria-label="Device name"
      onSubmit={async (e) => {
        e.preventDefault();
        await act(() => client.setName(name));
      }}
    >
      <h2>Device name</h2>
      <label>
        Name (other devices see it)
        <input value={name} onChange={(e) => setName(e.target.value)} required />
      </label>
      <div className="actions">
        <button type="submit" disabled={action.busy || name.trim() === current}>
          Rename
        </button>
      </div>
      <Outcome action={action} />
    </form>
  );
}

/** The desktop app only: whether it starts (in the tray) when the user logs in. */
function StartAtLogin() {
  const [enabled, setEnabled] = useState<boolean>();
  const [error, setError] = useState<string>();
  useEffect(() => {
    autostart.get().then(setEnabled, (e) => setError(errorText(e)));
  }, []);
  const change = async (on: boolean) => {
    setError(undefined);
    try {
      setEnabled(await autostart.set(on));
    } catch (e) {
      setError(errorText(e));
    }
  };
  return (
    <section className="card">
      <h2>Start at login</h2>
      <label className="check">
        <input
          id="autostart"
          type="checkbox"
          checked={enabled ?? false}
          disabled={enabled === undefined}
          onChange={(e) => void change(e.target.checked)}
        />
        Start Peerfold in the tray when I log in
      </label>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </section>
  );
}

/** The global limits (KiB/s, 0 for none), whether they apply on the LAN, and the schedule. */
function Bandwidth() {
  const live = useLive();
  const [action, act] = useLiveAction();
  const b = live.status?.bandwidth;
  const [send, setSend] = useState("0");
  const [recv, setRecv] = useState("0");
  const [lan, setLan] = useState(false);
  useEffect(() => {
    if (!b) return;
    setSend(String(b.configured_send_kibps));
    setRecv(String(b.configured_recv_kibps));
    setLan(b.limit_lan);
  }, [b?.configured_send_kibps, b?.configured_recv_kibps, b?.limit_lan]);
  return (
    <form
      className="card form"
      aria-label="Bandwidth"
      onSubmit={async (e) => {
        e.preventDefault();
        await act(() =>
          client.setLimits({ max_send_kibps: Number(send) || 0, max_recv_kibps: Number(recv) || 0, limit_lan: lan }),
        );
      }}
    >
      <h2>Bandwidth</h2>
      <p>Limits for all devices together, in KiB/s; 0 is unlimited. A device's own limits are set on its card.</p>
      <label>
        Send at most (KiB/s)
        <input type="number" min="0" value={send} onChange={(e) => setSend(e.target.value)} />
      </label>
      <label>
        Receive at most (KiB/s)
        <input type="number" min="0" value={recv} onChange={(e) => setRecv(e.target.value)} />
      </label>
      <label className="check">
        <input type="checkbox" checked={lan} onChange={(e) => setLan(e.target.checked)} />
        Limit devices on the local network too
      </label>
      {b && b.schedule.length > 0 && (
        <>
          <h3>Schedule</h3>
          <ul>
            {b.schedule.map((r, i) => (
              <li key={i}>
                {(r.days ?? []).join(", ") || "every day"} {r.from}–{r.to}:{" "}
                {r.pause ? "every device paused" : `send ${kibps(r.max_send_kibps ?? 0)}, receive ${kibps(r.max_recv_kibps ?? 0)}`}
                {b.rule?.index === i && <strong> (in force now)</strong>}
              </li>
            ))}
          </ul>
          <p>
            Change the schedule with <code>peerfold limits --schedule FILE</code>.
          </p>
        </>
      )}
      {b && (
        <p aria-label="Limits in force">
          In force now: send {kibps(b.max_send_kibps)}, receive {kibps(b.max_recv_kibps)}
          {b.rule && !b.rule.pause ? ` (schedule: ${b.rule.window})` : ""}.
        </p>
      )}
      <div className="actions">
        <button type="submit" disabled={action.busy}>
          Save limits
        </button>
      </div>
      <Outcome action={action} />
    </form>
  );
}
