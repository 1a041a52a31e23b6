import { useState } from "react";
import { client, useLive, useNavigate } from "../App";
import type { FolderType } from "../client";
import { DeviceChecks, FormFooter, useAction } from "../components";

/** Sharing a folder: path, label, type, and one checkbox per device (who may have it). */
export function AddFolder() {
  const live = useLive();
  const navigate = useNavigate();
  const action = useAction();
  const [id, setId] = useState("");
  const [label, setLabel] = useState("");
  const [path, setPath] = useState("");
  const [type, setType] = useState<FolderType>("send-receive");
  const [create, setCreate] = useState(false);
  const [devices, setDevices] = useState<Set<string>>(new Set());
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const folderId = id.trim() || suggestId(label || path);
    const ok = await action.run(() =>
      client.addFolder({ id: folderId, path: path.trim(), label: label.trim(), type, devices: [...devices], create }),
    );
    if (ok) {
      await live.refresh();
      navigate(`/folders/${encodeURIComponent(folderId)}`);
    }
  };
  return (
    <>
      <h1>Share a folder</h1>
      <form className="card form" onSubmit={submit} aria-label="Share a folder">
        <label>
          Path
          <input value={path} onChange={(e) => setPath(e.target.value)} placeholder="/home/me/Photos" required spellCheck={false} />
        </label>
        <label className="check">
          <input type="checkbox" checked={create} onChange={(e) => setCreate(e.target.checked)} />
          Create the directory if it does not exist
        </label>
        <label>
          Label
          <input value={label} onChange={(e) => setLabel(e.target.value)} placeholder="Photos" />
        </label>
        <label>
          Folder ID
          <input value={id} onChange={(e) => setId(e.target.value)} placeholder={suggestId(label || path) || "photos"} spellCheck={false} aria-describedby="folder-id-hint" />
        </label>
        <p className="hint" id="folder-id-hint">
          The same on every device that shares it; made from the label if left empty.
        </p>
        <label>
          Type
          <select value={type} onChange={(e) => setType(e.target.value as FolderType)}>
            <option value="send-receive">Send and receive</option>
            <option value="send-only">Send only</option>
            <option value="receive-only">Receive only</option>
          </select>
        </label>
        <DeviceChecks legend="Share with" empty="No devices yet: add one first." devices={live.devices} checked={devices} onChange={setDevices} />
        <FormFooter action={action} submit="Share folder" />
      </form>
    </>
  );
}

/** A folder ID from a label or path: lower case letters, digits and dashes. */
function suggestId(from: string): string {
  const last = from.trim().split("/").filter(Boolean).pop() ?? "";
  return last
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
}
