import { useEffect, useState } from "react";
import { client, useLive, useLiveAction } from "../App";
import { autostart, errorText, isTauri } from "../client";
import { Outcome, useAction } from "../components";

/** This device's name, how signing in works (browser) or starting at login (desktop app). */
export function Settings(props: { onSignOut: () => void }) {
  const action = useAction();
  const app = isTauri();
  return (
    <>
      <h1>Settings</h1>
      <DeviceName />
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
