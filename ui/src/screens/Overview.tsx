import { useState } from "react";
import { client, Link, useLive, useLiveAction } from "../App";
import type { PendingFolder } from "../client";
import { Badge, Outcome, Progress } from "../components";
import { bytes, count, duration, folderState, kibps, percent, rate, shortId, unixWhen } from "../format";

/** Folders, devices, and what other devices asked for. */
export function Overview() {
  const live = useLive();
  const status = live.status;
  const names = new Map(live.devices.map((d) => [d.id, d.name || shortId(d.id)]));
  return (
    <>
      <h1>Overview</h1>
      <PauseAll />
      <PendingRequests />
      <section aria-labelledby="folders-title">
        <div className="section-head">
          <h2 id="folders-title">Folders</h2>
          <Link to="/folders/add" className="button">
            Share a folder
          </Link>
        </div>
        {status && status.folders.length === 0 && <p className="empty">No folders yet.</p>}
        <ul className="cards">
          {status?.folders.map((f) => {
            const state = folderState(f);
            return (
              <li key={f.id} className="card" aria-label={`Folder ${f.label || f.id}`}>
                <div className="card-head">
                  <Link to={`/folders/${encodeURIComponent(f.id)}`} className="title">
                    {f.label || f.id}
                  </Link>
                  <Badge tone={state.tone}>{state.text}</Badge>
                </div>
                <Progress value={percent(f)} label={`${f.label || f.id} completion`} />
                <dl className="facts">
                  <dt>Path</dt>
                  <dd className="mono">{f.path}</dd>
                  <dt>Local</dt>
                  <dd>
                    {count(f.local.files, "file")}, {bytes(f.local.bytes)}
                  </dd>
                  <dt>Global</dt>
                  <dd>
                    {count(f.global.files, "file")}, {bytes(f.global.bytes)}
                  </dd>
                  {f.need.items > 0 && (
                    <>
                      <dt>Needed</dt>
                      <dd>
                        {count(f.need.items, "item")}, {bytes(f.need.bytes)}
                      </dd>
                    </>
                  )}
                  <dt>Rate</dt>
                  <dd>{rate(f.rate_bps)}</dd>
                  <dt>Time left</dt>
                  <dd>{f.need.items === 0 ? "—" : duration(f.eta_s)}</dd>
                  <dt>Shared with</dt>
                  <dd>
                    {f.devices.length === 0
                      ? "no device"
                      : f.devices.map((c) => `${names.get(c.device) ?? shortId(c.device)} (${c.percent.toFixed(0)} %)`).join(", ")}
                  </dd>
                </dl>
                {f.error && <p className="error">{f.error}</p>}
              </li>
            );
          })}
        </ul>
      </section>
      <section aria-labelledby="devices-title">
        <div className="section-head">
          <h2 id="devices-title">Devices</h2>
          <Link to="/devices/add" className="button">
            Add a device
          </Link>
        </div>
        {status && status.devices.length === 0 && <p className="empty">No devices yet.</p>}
        <ul className="cards">
          {status?.devices.map((d) => (
            <li key={d.id} className="card" aria-label={`Device ${d.name || shortId(d.id)}`}>
              <div className="card-head">
                <span className="title">{d.name || shortId(d.id)}</span>
                {d.paused ? (
                  <Badge tone="off">Paused</Badge>
                ) : d.connected ? (
                  <Badge tone="ok">Connected</Badge>
                ) : (
                  <Badge tone="warn">Disconnected</Badge>
                )}
              </div>
              <dl className="facts">
                <dt>ID</dt>
                <dd className="mono small">{d.id}</dd>
                {d.connected && (
                  <>
                    <dt>Address</dt>
                    <dd className="mono">{d.address ?? "—"}</dd>
                    <dt>Transport</dt>
                    <dd>
                      {d.transport === "relay"
                        ? "Relay: reachable only through a relay for now, so transfers are slower than over a direct connection"
                        : d.transport
                          ? d.transport.toUpperCase()
                          : "—"}
                    </dd>
                    <dt>Rates</dt>
                    <dd>
                      in {rate(d.rate_in_bps)}, out {rate(d.rate_out_bps)}
                    </dd>
                    {d.client && (
                      <>
                        <dt>Client</dt>
                        <dd>{d.client}</dd>
                      </>
                    )}
                  </>
                )}
              </dl>
              <DeviceActions id={d.id} paused={d.paused} />
              <DeviceLimits id={d.id} />
            </li>
          ))}
        </ul>
      </section>
    </>
  );
}

/** Pausing every device for a while, or until resumed; and why they are paused, if they are. */
function PauseAll() {
  const live = useLive();
  const [action, act] = useLiveAction();
  const paused = live.status?.bandwidth?.paused ?? [];
  const why = paused.map((r) => {
    switch (r.reason) {
      case "user":
        return r.until ? `until ${unixWhen(r.until)}` : "until you resume";
      case "schedule":
        return `by the schedule (${r.window})`;
      case "metered":
        return "while the network is metered";
      case "battery":
        return "while on battery";
    }
  });
  return (
    <section className="card" aria-label="Pause all devices">
      {paused.length > 0 ? (
        <p role="status">Every device is paused {why.join(" and ")}: nothing is sent or received.</p>
      ) : (
        <p>Syncing with every device.</p>
      )}
      <div className="actions">
        {paused.some((r) => r.reason === "user") ? (
          <button type="button" disabled={action.busy} onClick={() => act(() => client.resumeAll())}>
            Resume all
          </button>
        ) : (
          <>
            <button type="button" disabled={action.busy} onClick={() => act(() => client.pauseAll(3600))}>
              Pause all for 1 h
            </button>
            <button type="button" disabled={action.busy} onClick={() => act(() => client.pauseAll(8 * 3600))}>
              Pause all for 8 h
            </button>
            <button type="button" disabled={action.busy} onClick={() => act(() => client.pauseAll(null))}>
              Pause all until resumed
            </button>
          </>
        )}
      </div>
      <Outcome action={action} />
    </section>
  );
}

/** A device's own limits, in KiB/s (0: unlimited); its bytes pass the global limits too. */
function DeviceLimits(props: { id: string }) {
  const live = useLive();
  const [action, act] = useLiveAction();
  const d = live.devices.find((x) => x.id === props.id);
  const [send, setSend] = useState(String(d?.max_send_kibps ?? 0));
  const [recv, setRecv] = useState(String(d?.max_recv_kibps ?? 0));
  return (
    <form
      className="form inline"
      aria-label="Device limits"
      onSubmit={async (e) => {
        e.preventDefault();
        await act(() =>
          client.editDevice(props.id, { max_send_kibps: Number(send) || 0, max_recv_kibps: Number(recv) || 0 }),
        );
      }}
    >
      <label>
        Send (KiB/s, 0 = {kibps(0)})
        <input type="number" min="0" value={send} onChange={(e) => setSend(e.target.value)} />
      </label>
      <label>
        Receive (KiB/s)
        <input type="number" min="0" value={recv} onChange={(e) => setRecv(e.target.value)} />
      </label>
      <div className="actions">
        <button type="submit" disabled={action.busy}>
          Set limits
        </button>
      </div>
      <Outcome action={action} />
    </form>
  );
}

function DeviceActions(props: { id: string; paused: boolean }) {
  const [action, act] = useLiveAction();
  return (
    <div className="actions">
      <button type="button" disabled={action.busy} onClick={() => act(() => client.editDevice(props.id, { paused: !props.paused }))}>
        {props.paused ? "Resume" : "Pause"}
      </button>
      <button
        type="button"
        className="danger"
        disabled={action.busy}
        onClick={() => {
          if (window.confirm("Remove this device? Every folder stops being shared with it.")) void act(() => client.removeDevice(props.id));
        }}
      >
        Remove
      </button>
      <Outcome action={action} />
    </div>
  );
}

/** Devices that asked to connect and folders other devices offered, with Accept and Dismiss. */
export function PendingRequests() {
  const live = useLive();
  const { devices, folders } = live.pending;
  if (devices.length === 0 && folders.length === 0) return null;
  return (
    <section aria-labelledby="pending-title" className="pending">
      <h2 id="pending-title">Waiting for you</h2>
      <ul className="cards">
        {devices.map((d) => (
          <PendingDeviceCard key={d.device} device={d.device} name={d.name} address={d.address} seen={d.seen_at} />
        ))}
        {folders.map((f) => (
          <PendingFolderCard key={`${f.folder}/${f.device}`} offer={f} />
        ))}
      </ul>
    </section>
  );
}

function PendingDeviceCard(props: { device: string; name: string; address: string; seen: number }) {
  const [action, act] = useLiveAction();
  const label = props.name || shortId(props.device);
  return (
    <li className="card pending-card" aria-label={`Device request from ${label}`}>
      <p>
        Device <strong>{label}</strong> wants to connect (from {props.address}, {unixWhen(props.seen)}).
      </p>
      <p className="mono small">{props.device}</p>
      <div className="actions">
        <button type="button" className="primary" disabled={action.busy} onClick={() => act(() => client.acceptDevice(props.device))}>
          Accept device {label}
        </button>
        <button type="button" disabled={action.busy} onClick={() => act(() => client.dismissDevice(props.device))}>
          Dismiss
        </button>
      </div>
      <Outcome action={action} />
    </li>
  );
}

function PendingFolderCard(props: { offer: PendingFolder }) {
  const live = useLive();
  const [action, act] = useLiveAction();
  const { offer } = props;
  const exists = live.folders.some((f) => f.id === offer.folder);
  const [path, setPath] = useState("");
  const from = live.devices.find((d) => d.id === offer.device)?.name || shortId(offer.device);
  const label = offer.label || offer.folder;
  return (
    <li className="card pending-card" aria-label={`Folder offer ${label}`}>
      <p>
        <strong>{from}</strong> offers folder <strong>{label}</strong> ({offer.folder}).
      </p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void act(() => client.acceptFolder(offer.folder, offer.device, exists ? undefined : path.trim()));
        }}
      >
        {!exists && (
          <label>
            Keep it at (path on this device)
            <input value={path} onChange={(e) => setPath(e.target.value)} placeholder="/home/me/Sync" required />
          </label>
        )}
        <div className="actions">
          <button type="submit" className="primary" disabled={action.busy}>
            Accept folder {label}
          </button>
          <button type="button" disabled={action.busy} onClick={() => act(() => client.dismissFolder(offer.folder, offer.device))}>
            Dismiss
          </button>
        </div>
      </form>
      <Outcome action={action} />
    </li>
  );
}
