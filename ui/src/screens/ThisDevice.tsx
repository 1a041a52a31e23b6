import { useEffect, useState } from "react";
import { client, useLive } from "../App";
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
    </>
  );
}
