import { useEffect, useState } from "react";
import { client, useLive } from "../App";
import { DeviceChecks, FormFooter, useAction, useDeviceFields } from "../components";
import { Invite, Join } from "./ThisDevice";

/**
 * The desktop app's first run: name this device (and offer to pause on a metered network or on
 * battery, off unless ticked), show its ID and QR code, add a device, share a first folder.
 * Shown while the home has no devices and no folders; every step can be skipped.
 */
export function Wizard(props: { onDone: () => void }) {
  const live = useLive();
  const [step, setStep] = useState(0);
  const steps = ["Name this device", "This device's ID", "Add a device", "Share a folder"];
  return (
    <div className="wizard" data-testid="wizard">
      <h1>Welcome to Peerfold</h1>
      <ol className="wizard-steps">
        {steps.map((s, i) => (
          <li key={s} className={i === step ? "active" : i < step ? "done" : undefined}>
            {s}
          </li>
        ))}
      </ol>
      {step === 0 && <NameStep name={live.system?.name ?? ""} onNext={() => setStep(1)} />}
      {step === 1 && <IdStep onNext={() => setStep(2)} />}
      {step === 2 && <DeviceStep onNext={() => setStep(3)} />}
      {step === 3 && <FolderStep onDone={props.onDone} />}
      <p className="hint">
        <button type="button" className="link" id="wizard-skip" onClick={props.onDone}>
          Skip the setup
        </button>{" "}
        — every step is also in the menu.
      </p>
    </div>
  );
}

function NameStep(props: { name: string; onNext: () => void }) {
  const live = useLive();
  const action = useAction();
  const [name, setName] = useState(props.name);
  const [metered, setMetered] = useState(false);
  const [battery, setBattery] = useState(false);
  useEffect(() => setName(props.name), [props.name]);
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const save = async () => {
      await client.setName(name);
      // Off is the default: only a tick changes the configuration.
      if (metered || battery) await client.setLimits({ pause_on_metered: metered, pause_on_battery: battery });
    };
    if (await action.run(save)) {
      await live.refresh();
      props.onNext();
    }
  };
  return (
    <form className="card form" onSubmit={submit} aria-label="Name this device">
      <h2>Name this device</h2>
      <p>Your other devices show this name.</p>
      <label>
        Device name
        <input id="wizard-name" value={name} onChange={(e) => setName(e.target.value)} required />
      </label>
      <fieldset>
        <legend>On a laptop</legend>
        <label className="check">
          <input id="wizard-pause-metered" type="checkbox" checked={metered} onChange={(e) => setMetered(e.target.checked)} />
          Pause syncing while the network is metered (a phone's hotspot, say)
        </label>
        <label className="check">
          <input id="wizard-pause-battery" type="checkbox" checked={battery} onChange={(e) => setBattery(e.target.checked)} />
          Pause syncing while on battery
        </label>
      </fieldset>
      <FormFooter action={action} submit="Next" id="wizard-name-next" />
    </form>
  );
}

function IdStep(props: { onNext: () => void }) {
  const { system } = useLive();
  const [qr, setQr] = useState<string>();
  useEffect(() => {
    void client.qrImage().then(setQr, () => setQr(undefined));
  }, []);
  return (
    <section className="card this-device">
      <h2>This device's ID</h2>
      <p>Give this ID to your other device (on its "Add a device" page), or scan the code with a phone.</p>
      <p className="device-id">
        <code id="wizard-device-id" data-testid="device-id">
          {system?.id}
        </code>
      </p>
      {qr && <img className="qr" src={qr} alt="This device's ID as a QR code" width={220} height={220} />}
      <div className="actions">
        <button type="button" className="primary" id="wizard-id-next" onClick={props.onNext}>
          Next
        </button>
      </div>
    </section>
  );
}

function DeviceStep(props: { onNext: () => void }) {
  const live = useLive();
  const action = useAction();
  const { id, setId, name, setName, addresses, setAddresses, device } = useDeviceFields();
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const added = await action.run(() => client.addDevice(device()));
    if (added) {
      await live.refresh();
      props.onNext();
    }
  };
  return (
    <>
      <form className="card form" onSubmit={submit} aria-label="Add a device">
        <h2>Add a device</h2>
        <p>The ID of your other device: its "This device" page, or <code>peerfold id</code> there.</p>
        <label>
          Device ID
          <textarea id="wizard-device" rows={2} value={id} onChange={(e) => setId(e.target.value)} required spellCheck={false} />
        </label>
        <label>
          Name
          <input id="wizard-device-name" value={name} onChange={(e) => setName(e.target.value)} placeholder="laptop" />
        </label>
        <label>
          Addresses
          <input
            id="wizard-device-addresses"
            value={addresses}
            onChange={(e) => setAddresses(e.target.value)}
            placeholder="leave empty to find it by discovery"
            spellCheck={false}
          />
        </label>
        <FormFooter action={action} submit="Add and continue" id="wizard-device-next">
          <button type="button" onClick={props.onNext}>
            Later
          </button>
        </FormFooter>
      </form>
      <p className="hint">
        Or pair in one step with no ID to copy: make an invitation here and open it on the other device
        (or <code>peerfold join LINK</code> there), or paste the other device's invitation below.
      </p>
      <Invite />
      <Join />
    </>
  );
}

function FolderStep(props: { onDone: () => void }) {
  const live = useLive();
  const action = useAction();
  const [path, setPath] = useState("");
  const [label, setLabel] = useState("");
  const [devices, setDevices] = useState<Set<string>>(new Set(live.devices.map((d) => d.id)));
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const id = folderId(label || path);
    const shared = await action.run(() =>
      client.addFolder({ id, path: path.trim(), label: label.trim(), devices: [...devices], create: true }),
    );
    if (shared) {
      await live.refresh();
      props.onDone();
    }
  };
  return (
    <form className="card form" onSubmit={submit} aria-label="Share a folder">
      <h2>Share a first folder</h2>
      <label>
        Path
        <input id="wizard-folder-path" value={path} onChange={(e) => setPath(e.target.value)} required spellCheck={false} placeholder="/home/me/Documents" />
      </label>
      <label>
        Label
        <input id="wizard-folder-label" value={label} onChange={(e) => setLabel(e.target.value)} placeholder="Documents" />
      </label>
      <DeviceChecks legend="Share with" empty="No devices yet: it is shared with none for now." devices={live.devices} checked={devices} onChange={setDevices} />
      <FormFooter action={action} submit="Share and finish" id="wizard-folder-share">
        <button type="button" onClick={props.onDone}>
          Later
        </button>
      </FormFooter>
    </form>
  );
}

/** A folder ID from a label or path: lower case letters, digits and dashes. */
function folderId(from: string): string {
  const last = from.trim().split(/[\\/]/).filter(Boolean).pop() ?? "";
  return (
    last
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "") || "default"
  );
}
