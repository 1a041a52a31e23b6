// Small pieces the screens share: running an API call with its outcome shown as a sentence,
// and parts of forms.
import { useCallback, useState } from "react";
import { errorText, type Device, type Edited, type NewDevice } from "./client";
import { shortId } from "./format";

export interface Action {
  busy: boolean;
  error?: string;
  message?: string;
  /** Runs `call`; its error (or the change's message) shows in `<Outcome>`. True if it worked. */
  run: (call: () => Promise<unknown>) => Promise<boolean>;
  clear: () => void;
}

export function useAction(): Action {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [message, setMessage] = useState<string>();
  const run = useCallback(async (call: () => Promise<unknown>) => {
    setBusy(true);
    setError(undefined);
    setMessage(undefined);
    try {
      const answer = await call();
      const said = (answer as Edited | undefined)?.message;
      if (typeof said === "string" && said) setMessage(said);
      return true;
    } catch (e) {
      setError(errorText(e));
      return false;
    } finally {
      setBusy(false);
    }
  }, []);
  const clear = useCallback(() => {
    setError(undefined);
    setMessage(undefined);
  }, []);
  return { busy, error, message, run, clear };
}

export function Outcome(props: { action: Action }) {
  const { error, message } = props.action;
  if (error)
    return (
      <p role="alert" className="error">
        {error}
      </p>
    );
  if (message)
    return (
      <p role="status" className="ok-message">
        {message}
      </p>
    );
  return null;
}

/**
 * A form's end: its primary submit button (disabled while the action runs), any other buttons,
 * then the action's outcome.
 */
export function FormFooter(props: { action: Action; submit: string; id?: string; children?: React.ReactNode }) {
  return (
    <>
      <div className="actions">
        <button type="submit" className="primary" id={props.id} disabled={props.action.busy}>
          {props.submit}
        </button>
        {props.children}
      </div>
      <Outcome action={props.action} />
    </>
  );
}

export function Badge(props: { tone: string; children: React.ReactNode }) {
  return <span className={`badge ${props.tone}`}>{props.children}</span>;
}

export function Progress(props: { value: number; label: string }) {
  return (
    <div className="progress" role="progressbar" aria-label={props.label} aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(props.value)}>
      <div style={{ width: `${props.value}%` }} />
    </div>
  );
}

/** Data that one screen loads for itself (folder details), with its error as a sentence. */
export function useLoad<T>() {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<string>();
  const load = useCallback(async (call: () => Promise<T>) => {
    try {
      setData(await call());
      setError(undefined);
    } catch (e) {
      setError(errorText(e));
    }
  }, []);
  return { data, error, load };
}

/** One checkbox per device, labelled with its name: the devices a folder is shared with. */
export function DeviceChecks(props: {
  legend: string;
  /** Said when there are no devices at all. */
  empty: string;
  devices: Device[];
  checked: Set<string>;
  onChange: (checked: Set<string>) => void;
}) {
  const toggle = (id: string) => {
    const next = new Set(props.checked);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    props.onChange(next);
  };
  return (
    <fieldset>
      <legend>{props.legend}</legend>
      {props.devices.length === 0 && <p className="empty">{props.empty}</p>}
      {props.devices.map((d) => (
        <label key={d.id} className="check">
          <input type="checkbox" checked={props.checked.has(d.id)} onChange={() => toggle(d.id)} />
          {d.name || shortId(d.id)}
        </label>
      ))}
    </fieldset>
  );
}

/** The fields of a form that adds a device, and the device they describe. */
export function useDeviceFields() {
  const [id, setId] = useState("");
  const [name, setName] = useState("");
  const [addresses, setAddresses] = useState("");
  /** Addresses are separated by commas or white space; none means "dynamic" (found by discovery). */
  const device = (): NewDevice => {
    const list = addresses.split(/[\s,]+/).filter(Boolean);
    return { id: id.trim(), name: name.trim() || undefined, addresses: list.length ? list : undefined };
  };
  const clear = () => {
    setId("");
    setName("");
    setAddresses("");
  };
  return { id, setId, name, setName, addresses, setAddresses, device, clear };
}
