import { useState } from "react";
import { client, useLive, useNavigate } from "../App";
import { FormFooter, useAction, useDeviceFields } from "../components";
import { PendingRequests } from "./Overview";

/** Adding a device by its ID; devices that asked to connect are listed above to accept. */
export function AddDevice() {
  const live = useLive();
  const navigate = useNavigate();
  const action = useAction();
  const { id, setId, name, setName, addresses, setAddresses, device, clear } = useDeviceFields();
  const [autoAccept, setAutoAccept] = useState(false);
  const [introducer, setIntroducer] = useState(false);
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const d = device();
    const ok = await action.run(async () => {
      const said = [(await client.addDevice(d)).message];
      if (introducer) said.push((await client.setIntroducer(d.id, true)).message);
      if (autoAccept) said.push((await client.setAutoAccept(d.id, true)).message);
      return { changed: true, message: said.join(" ") };
    });
    if (ok) {
      await live.refresh();
      clear();
    }
  };
  return (
    <>
      <h1>Add a device</h1>
      <PendingRequests />
      <form className="card form" onSubmit={submit} aria-label="Add a device">
        <label>
          Device ID
          <textarea
            rows={2}
            value={id}
            onChange={(e) => setId(e.target.value)}
            placeholder="MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD"
            required
            spellCheck={false}
            aria-describedby="device-id-hint"
          />
        </label>
        <p className="hint" id="device-id-hint">
          On the other device: its "This device" page, or <code>peerfold id</code>.
        </p>
        <label>
          Name
          <input value={name} onChange={(e) => setName(e.target.value)} placeholder="laptop" />
        </label>
        <label>
          Addresses
          <input
            value={addresses}
            onChange={(e) => setAddresses(e.target.value)}
            placeholder="tcp://192.0.2.7:22000, quic://192.0.2.7:22000"
            spellCheck={false}
            aria-describedby="addresses-hint"
          />
        </label>
        <p className="hint" id="addresses-hint">
          Comma-separated; leave empty to find it by discovery ("dynamic").
        </p>
        <label className="check">
          <input type="checkbox" checked={autoAccept} onChange={(e) => setAutoAccept(e.target.checked)} />
          Add the folders it offers without asking
        </label>
        <p className="hint">
          Each in a new folder named after it in your home folder. Only for a device you trust to choose
          what you store.
        </p>
        <label className="check">
          <input type="checkbox" checked={introducer} onChange={(e) => setIntroducer(e.target.checked)} />
          Introducer: also add the devices it shares your folders with
        </label>
        <p className="hint">As Syncthing's introducer; they are removed again when it stops sharing with them.</p>
        <FormFooter action={action} submit="Add device">
          {action.message && (
            <button type="button" onClick={() => navigate("/")}>
              Back to the overview
            </button>
          )}
        </FormFooter>
      </form>
    </>
  );
}
