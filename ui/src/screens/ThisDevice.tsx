import { useEffect, useState } from "react";
import { client, useLive } from "../App";
import type { InviteLink } from "../client";
import { FormFooter, useAction } from "../components";
import { duration } from "../format";

/** This device's ID, to give to the other device, with a copy button and the QR code. */
export function ThisDevice() {
  const { system } = useLive();
  const [copied, setCopied] = useState<string>();
  const [qr, setQr] = useState<string>();
  useEffect(() => {
    client.qrImage().then(setQr, () => setQr(undefined));
  }, []);
  const copy = async () => {
    if (!system) return;
    try {
      await navigator.clipboard.writeText(system.id);
      setCopied("Copied the ID.");
    } catch {
      setCopied("Could not copy; select the ID and copy it by hand.");
    }
  };
  return (
    <>
      <h1>This device</h1>
      {system && (
        <section className="card this-device">
          <p>Give this ID to your other device (on its "Add a device" page), or scan the code with a phone.</p>
          <p className="device-id">
            <code aria-label="Device ID" data-testid="device-id">
              {system.id}
            </code>
          </p>
          <div className="actions">
            <button type="button" className="primary" onClick={copy}>
              Copy ID
            </button>
            {copied && <span role="status">{copied}</span>}
          </div>
          {qr && <img className="qr" src={qr} alt="This device's ID as a QR code" width={220} height={220} />}
          <dl className="facts">
            <dt>Name</dt>
            <dd>{system.name}</dd>
            <dt>Version</dt>
            <dd>{system.version}</dd>
            <dt>Running for</dt>
            <dd>{duration(system.uptime_s)}</dd>
          </dl>
        </section>
      )}
      <Invite />
      <Join />
    </>
  );
}

const EXPIRY_CHOICES: [string, number][] = [
  ["1 hour", 3600],
  ["1 day", 86400],
  ["7 days", 7 * 86400],
];

/** Makes an invitation: the other device joins with the link (or its QR code) in one step. */
export function Invite() {
  const live = useLive();
  const action = useAction();
  const [folders, setFolders] = useState<string[]>([]);
  const [expires, setExpires] = useState(86400);
  const [invite, setInvite] = useState<InviteLink>();
  const [copied, setCopied] = useState<string>();
  const toggle = (id: string) =>
    setFolders((now) => (now.includes(id) ? now.filter((f) => f !== id) : [...now, id]));
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setInvite(undefined);
    setCopied(undefined);
    await action.run(async () => setInvite(await client.invite(folders, expires)));
  };
  const copy = async () => {
    if (!invite) return;
    try {
      await navigator.clipboard.writeText(invite.link);
      setCopied("Copied the link.");
    } catch {
      setCopied("Could not copy; select the link and copy it by hand.");
    }
  };
  return (
    <form className="card form" onSubmit={submit} aria-label="Invite a device">
      <h2>Invite a device</h2>
      <p>
        The other device joins with the link (its "This device" page, or <code>peerfold join LINK</code>): it is added
        here, and the folders you tick are shared with it. The link works once.
      </p>
      {live.folders.length > 0 && (
        <fieldset>
          <legend>Folders to share</legend>
          {live.folders.map((f) => (
            <label key={f.id} className="check">
              <input type="checkbox" checked={folders.includes(f.id)} onChange={() => toggle(f.id)} />
              {f.label || f.id}
            </label>
          ))}
        </fieldset>
      )}
      <label>
        Valid for
        <select value={expires} onChange={(e) => setExpires(Number(e.target.value))}>
          {EXPIRY_CHOICES.map(([label, s]) => (
            <option key={s} value={s}>
              {label}
            </option>
          ))}
        </select>
      </label>
      <FormFooter action={action} submit="Make an invitation" />
      {invite && (
        <div className="invite">
          <label>
            Invitation link
            <textarea readOnly rows={3} value={invite.link} aria-label="Invitation link" data-testid="invite-link" spellCheck={false} />
          </label>
          <div className="actions">
            <button type="button" onClick={copy}>
              Copy link
            </button>
            {copied && <span role="status">{copied}</span>}
          </div>
          {invite.qr_svg && (
            <img
              className="qr"
              src={`data:image/svg+xml;charset=utf-8,${encodeURIComponent(invite.qr_svg)}`}
              alt="The invitation link as a QR code"
              width={260}
              height={260}
            />
          )}
          <p className="hint">Valid until {new Date(invite.expires_at * 1000).toLocaleString()}.</p>
        </div>
      )}
    </form>
  );
}

/** The folders a `peerfold://invite/…` link offers, read from it to ask where to keep each
 * (the daemon checks the link again; this is only for the form). */
function offeredFolders(link: string): { id: string; label: string }[] {
  const body = link.trim().replace(/^peerfold:\/\/invite\//, "");
  if (body === link.trim()) return [];
  try {
    const json = JSON.parse(atob(body.replace(/-/g, "+").replace(/_/g, "/")));
    return Array.isArray(json.folders) ? json.folders.filter((f: unknown) => typeof (f as { id?: unknown }).id === "string") : [];
  } catch {
    return [];
  }
}

/** Joins the device that made an invitation link, keeping each offered folder where asked
 * (by default under the home folder, named after its label). */
export function Join() {
  const live = useLive();
  const action = useAction();
  const [link, setLink] = useState("");
  const [paths, setPaths] = useState<Record<string, string>>({});
  const folders = offeredFolders(link);
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const given = Object.fromEntries(
      Object.entries(paths).filter(([id, p]) => p.trim() && folders.some((f) => f.id === id)).map(([id, p]) => [id, p.trim()]),
    );
    if (await action.run(() => client.join(link, given))) {
      setLink("");
      setPaths({});
      await live.refresh();
    }
  };
  return (
    <form className="card form" onSubmit={submit} aria-label="Join with an invitation">
      <h2>Join with an invitation</h2>
      <label>
        Invitation link
        <textarea
          rows={3}
          value={link}
          onChange={(e) => setLink(e.target.value)}
          placeholder="peerfold://invite/…"
          required
          spellCheck={false}
        />
      </label>
      {folders.map((f) => (
        <label key={f.id}>
          Keep {f.label || f.id} at
          <input
            value={paths[f.id] ?? ""}
            onChange={(e) => setPaths((now) => ({ ...now, [f.id]: e.target.value }))}
            placeholder={`~/${f.label || f.id}`}
            spellCheck={false}
          />
        </label>
      ))}
      <p className="hint">A folder with no path given is kept in a new directory in your home folder, named after its label.</p>
      <FormFooter action={action} submit="Join" />
    </form>
  );
}
