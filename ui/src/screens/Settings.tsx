import { client, useLive } from "../App";
import { Outcome, useAction } from "../components";

/** This device's name and how signing in works. */
export function Settings(props: { onSignOut: () => void }) {
  const { system } = useLive();
  const action = useAction();
  return (
    <>
      <h1>Settings</h1>
      <section className="card">
        <h2>Device name</h2>
        <p>
          This device is called <strong>{system?.name}</strong>; other devices see this name. Change it with{" "}
          <code>name = "…"</code> in <code>config.toml</code> in Peerfold's home directory.
        </p>
      </section>
      <section className="card">
        <h2>Web UI password</h2>
        <p>
          Set or change the password with <code>peerfold gui password --user NAME</code> on this device (with the daemon
          stopped). A password is required before the web UI may listen on anything but this machine. Without one,{" "}
          <code>peerfold gui url</code> prints a link that signs a browser in.
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
    </>
  );
}
