import { useCallback, useEffect, useState } from "react";
import { client, useLive, useLiveAction, useNavigate } from "../App";
import type { BrowseItem, Conflict, FailedItem, FileVersions, Folder, NeededItem } from "../client";
import { Badge, DeviceChecks, FormFooter, Outcome, Progress, useAction, useLoad } from "../components";
import { bytes, count, duration, folderState, percent, rate, shortId, when } from "../format";

/** One folder: its state, actions, settings, selective sync, ignore patterns, conflicts, failed and needed items, versions. */
export function FolderDetails(props: { id: string }) {
  const live = useLive();
  // Bumped by a selective-sync change: the ignore patterns and the trash can are read again.
  const [selectionChanges, setSelectionChanges] = useState(0);
  const folder = live.folders.find((f) => f.id === props.id);
  const status = live.status?.folders.find((f) => f.id === props.id);
  if (!folder) {
    return live.status ? (
      <p role="alert" className="error">
        There is no folder with ID "{props.id}".
      </p>
    ) : (
      <p className="loading">Loading…</p>
    );
  }
  const state = status ? folderState(status) : undefined;
  return (
    <>
      <div className="section-head">
        <h1>{folder.label || folder.id}</h1>
        {state && <Badge tone={state.tone}>{state.text}</Badge>}
      </div>
      {status && (
        <section className="card">
          <Progress value={percent(status)} label="Completion" />
          <dl className="facts">
            <dt>ID</dt>
            <dd className="mono">{folder.id}</dd>
            <dt>Path</dt>
            <dd className="mono">{folder.path}</dd>
            <dt>Type</dt>
            <dd>{folder.type}</dd>
            <dt>Local</dt>
            <dd>
              {count(status.local.files, "file")}, {count(status.local.directories, "directory", "directories")}, {bytes(status.local.bytes)}
            </dd>
            <dt>Global</dt>
            <dd>
              {count(status.global.files, "file")}, {bytes(status.global.bytes)}
            </dd>
            <dt>Needed</dt>
            <dd>
              {count(status.need.items, "item")}, {bytes(status.need.bytes)}
            </dd>
            <dt>Rate</dt>
            <dd>{rate(status.rate_bps)}</dd>
            <dt>Time left</dt>
            <dd>{status.need.items === 0 ? "—" : duration(status.eta_s)}</dd>
          </dl>
          {status.error && <p className="error">{status.error}</p>}
          <FolderActions folder={folder} />
        </section>
      )}
      <FolderSettings folder={folder} />
      <SelectiveSync id={folder.id} onChanged={() => setSelectionChanges((n) => n + 1)} />
      <Ignores key={`ignores-${selectionChanges}`} id={folder.id} />
      <Conflicts id={folder.id} />
      <Failed id={folder.id} />
      <Needed id={folder.id} />
      <Versions key={`versions-${selectionChanges}`} id={folder.id} />
    </>
  );
}

function FolderActions(props: { folder: Folder }) {
  const live = useLive();
  const navigate = useNavigate();
  const [action, act] = useLiveAction();
  const { folder } = props;
  return (
    <>
      <div className="actions">
        <button type="button" disabled={action.busy} onClick={() => act(() => client.editFolder(folder.id, { paused: !folder.paused }))}>
          {folder.paused ? "Resume" : "Pause"}
        </button>
        <button type="button" disabled={action.busy || folder.paused} onClick={() => act(() => client.scanFolder(folder.id))}>
          Rescan now
        </button>
        <button
          type="button"
          className="danger"
          disabled={action.busy}
          onClick={async () => {
            if (!window.confirm(`Remove folder "${folder.label || folder.id}"? Its files stay on disk.`)) return;
            if (await action.run(() => client.removeFolder(folder.id))) {
              await live.refresh();
              navigate("/");
            }
          }}
        >
          Remove
        </button>
      </div>
      <Outcome action={action} />
    </>
  );
}

function FolderSettings(props: { folder: Folder }) {
  const live = useLive();
  const [action, act] = useLiveAction();
  const { folder } = props;
  const [label, setLabel] = useState(folder.label);
  const [keep, setKeep] = useState(folder.versioning.type === "trashcan");
  const [keepDays, setKeepDays] = useState(folder.versioning.type === "trashcan" ? folder.versioning.keep_days : 30);
  const [rescan, setRescan] = useState(folder.rescan_interval_s ?? 3600);
  const [watch, setWatch] = useState(folder.watch ?? true);
  const [devices, setDevices] = useState(new Set(folder.devices));
  const save = async (e: React.FormEvent) => {
    e.preventDefault();
    const patch: Parameters<typeof client.editFolder>[1] = {
      label,
      devices: [...devices],
      versioning: keep ? { type: "trashcan", keep_days: keepDays } : { type: "none" },
    };
    // Sent only when changed, so a daemon without these settings still saves the rest.
    if (rescan !== (folder.rescan_interval_s ?? 3600)) patch.rescan_interval_s = rescan;
    if (watch !== (folder.watch ?? true)) patch.watch = watch;
    await act(() => client.editFolder(folder.id, patch));
  };
  return (
    <form className="card form" onSubmit={save} aria-label="Folder settings">
      <h2>Settings</h2>
      <label>
        Label
        <input value={label} onChange={(e) => setLabel(e.target.value)} />
      </label>
      <fieldset>
        <legend>Versioning</legend>
        <label className="check">
          <input type="checkbox" checked={keep} onChange={(e) => setKeep(e.target.checked)} />
          Keep replaced and deleted files in .stversions
        </label>
        {keep && (
          <label>
            Keep them for (days, 0 = forever)
            <input type="number" min={0} value={keepDays} onChange={(e) => setKeepDays(Number(e.target.value))} />
          </label>
        )}
      </fieldset>
      <label>
        Full rescan every (seconds)
        <input type="number" min={0} value={rescan} onChange={(e) => setRescan(Number(e.target.value))} />
      </label>
      <label className="check">
        <input type="checkbox" checked={watch} onChange={(e) => setWatch(e.target.checked)} />
        Watch for changes
      </label>
      <DeviceChecks legend="Shared with" empty="No devices yet." devices={live.devices} checked={devices} onChange={setDevices} />
      <FormFooter action={action} submit="Save settings" />
    </form>
  );
}

function Ignores(props: { id: string }) {
  const { data, error, load } = useLoad<{ lines: string[] }>();
  const [text, setText] = useState<string>();
  const action = useAction();
  useEffect(() => {
    void load(() => client.ignores(props.id));
  }, [load, props.id]);
  useEffect(() => {
    if (data) setText(data.lines.join("\n"));
  }, [data]);
  return (
    <form
      className="card form"
      aria-label="Ignore patterns"
      onSubmit={async (e) => {
        e.preventDefault();
        const lines = (text ?? "").split("\n").map((l) => l.replace(/\r$/, ""));
        while (lines.length && lines[lines.length - 1] === "") lines.pop();
        await action.run(async () => {
          const saved = await client.setIgnores(props.id, lines);
          setText(saved.lines.join("\n"));
          return { message: "Saved the ignore patterns." };
        });
      }}
    >
      <h2>Ignore patterns</h2>
      {error ? (
        <p className="error">{error}</p>
      ) : (
        <>
          <label>
            One pattern per line (.stignore)
            <textarea rows={6} value={text ?? ""} onChange={(e) => setText(e.target.value)} spellCheck={false} className="mono" />
          </label>
          <div className="actions">
            <button type="submit" className="primary" disabled={action.busy || text === undefined}>
              Save patterns
            </button>
          </div>
        </>
      )}
      <Outcome action={action} />
    </form>
  );
}

function Conflicts(props: { id: string }) {
  const { data, error, load } = useLoad<Conflict[]>();
  const action = useAction();
  const reload = useCallback(() => load(() => client.conflicts(props.id)), [load, props.id]);
  useEffect(() => {
    void reload();
  }, [reload]);
  return (
    <section className="card" aria-labelledby="conflicts-title">
      <h2 id="conflicts-title">Conflicts</h2>
      {error && <p className="error">{error}</p>}
      {data && data.length === 0 && <p className="empty">No conflicts.</p>}
      <ul className="rows">
        {data?.map((c) => (
          <li key={c.conflict}>
            <p>
              <strong className="mono">{c.path}</strong> was changed here and on {c.device_name ?? shortId(c.device)}.
            </p>
            <div className="two">
              <div>
                <h3>This version</h3>
                {/* The file may be gone since the copy was made: the API says null then. */}
                <p>{c.current ? `${bytes(c.current.size)}, ${when(c.current.modified)}` : "No longer exists."}</p>
                <button type="button" disabled={action.busy} onClick={async () => (await action.run(() => client.resolveConflict(props.id, c.conflict, "current"))) && reload()}>
                  Keep this
                </button>
              </div>
              <div>
                <h3>The other version</h3>
                <p>
                  {bytes(c.copy.size)}, {when(c.copy.modified)} <span className="mono small">({c.conflict})</span>
                </p>
                <button type="button" disabled={action.busy} onClick={async () => (await action.run(() => client.resolveConflict(props.id, c.conflict, "copy"))) && reload()}>
                  Keep that
                </button>
              </div>
            </div>
          </li>
        ))}
      </ul>
      <Outcome action={action} />
    </section>
  );
}

function Failed(props: { id: string }) {
  const { data, error, load } = useLoad<FailedItem[]>();
  useEffect(() => {
    void load(() => client.failed(props.id));
  }, [load, props.id]);
  return (
    <section className="card" aria-labelledby="failed-title">
      <h2 id="failed-title">Failed items</h2>
      {error && <p className="error">{error}</p>}
      {data && data.length === 0 && <p className="empty">Nothing failed.</p>}
      <ul className="rows">
        {data?.map((f) => (
          <li key={f.path}>
            <span className="mono">{f.path}</span>: {f.error} <span className="muted">({when(f.at)})</span>
          </li>
        ))}
      </ul>
    </section>
  );
}

function Needed(props: { id: string }) {
  const { data, error, load } = useLoad<NeededItem[]>();
  useEffect(() => {
    void load(() => client.needed(props.id));
  }, [load, props.id]);
  return (
    <section className="card" aria-labelledby="needed-title">
      <h2 id="needed-title">Out of sync</h2>
      {error && <p className="error">{error}</p>}
      {data && data.length === 0 && <p className="empty">Nothing is needed.</p>}
      <ul className="rows">
        {data?.map((n) => (
          <li key={n.path}>
            <span className="mono">{n.path}</span> {n.deleted ? "(to delete)" : `(${bytes(n.size)})`}
          </li>
        ))}
      </ul>
    </section>
  );
}

function Versions(props: { id: string }) {
  const { data, error, load } = useLoad<FileVersions[]>();
  const action = useAction();
  const reload = useCallback(() => load(() => client.versions(props.id)), [load, props.id]);
  useEffect(() => {
    void reload();
  }, [reload]);
  return (
    <section className="card" aria-labelledby="versions-title">
      <h2 id="versions-title">Versions to restore</h2>
      {error && <p className="error">{error}</p>}
      {data && data.length === 0 && <p className="empty">No old versions are kept.</p>}
      <ul className="rows">
        {data?.map((f) => (
          <li key={f.path}>
            <span className="mono">{f.path}</span>
            <ul>
              {f.versions.map((v) => (
                <li key={v.version}>
                  {when(v.modified)}, {bytes(v.size)}{" "}
                  <button type="button" disabled={action.busy} onClick={async () => (await action.run(() => client.restoreVersion(props.id, f.path, v.version))) && reload()}>
                    Restore
                  </button>
                </li>
              ))}
            </ul>
          </li>
        ))}
      </ul>
      <Outcome action={action} />
    </section>
  );
}

/**
 * Selective sync: the folder's global tree (every device's index) as checkboxes, each directory
 * fetched when it is expanded, a page at a time. Unchecking what is on this device asks whether
 * to keep the local copy or move it to the trash can; the answer says which was done.
 */
function SelectiveSync(props: { id: string; onChanged: () => void }) {
  const live = useLive();
  const action = useAction();
  // Bumped after every change, so that every open level loads again.
  const [generation, setGeneration] = useState(0);
  const [asking, setAsking] = useState<BrowseItem>();
  const change = async (call: () => Promise<unknown>) => {
    setAsking(undefined);
    if (await action.run(call)) {
      setGeneration((g) => g + 1);
      props.onChanged();
      // The folder's figures changed (what is here, what is needed).
      await live.refresh();
    }
  };
  const toggle = (item: BrowseItem) => {
    if (!item.selected) void change(() => client.select(props.id, [item.path]));
    else if (item.local) setAsking(item);
    else void change(() => client.deselect(props.id, [item.path], false));
  };
  return (
    <section className="card" aria-labelledby="selective-title">
      <h2 id="selective-title">Selective sync</h2>
      <p className="muted">What is unchecked is not synced to this device (written to .stignore in a marked block).</p>
      {asking && (
        <div role="group" aria-label="Local copy" className="ask">
          <p>
            <span className="mono">{asking.path}</span> is on this device. Keep the local copy, or move it to the trash can (.stversions)?
          </p>
          <div className="actions">
            <button type="button" disabled={action.busy} onClick={() => change(() => client.deselect(props.id, [asking.path], false))}>
              Keep the local copy
            </button>
            <button type="button" className="danger" disabled={action.busy} onClick={() => change(() => client.deselect(props.id, [asking.path], true))}>
              Move it to the trash can
            </button>
            <button type="button" disabled={action.busy} onClick={() => setAsking(undefined)}>
              Cancel
            </button>
          </div>
        </div>
      )}
      <TreeLevel id={props.id} dir="" generation={generation} busy={action.busy} onToggle={toggle} />
      <Outcome action={action} />
    </section>
  );
}

function TreeLevel(props: { id: string; dir: string; generation: number; busy: boolean; onToggle: (item: BrowseItem) => void }) {
  const { id, dir, generation } = props;
  const [items, setItems] = useState<BrowseItem[]>();
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string>();
  const [open, setOpen] = useState<Set<string>>(new Set());
  const loadFrom = useCallback(
    async (after: string | null, keep: BrowseItem[]) => {
      try {
        const page = await client.browse(id, dir, after);
        setItems([...keep, ...page.items]);
        setNext(page.next ?? null);
        setError(undefined);
      } catch (e) {
        setError(e instanceof Error ? e.message : String(e));
      }
    },
    [id, dir],
  );
  useEffect(() => {
    void loadFrom(null, []);
  }, [loadFrom, generation]);
  if (error) return <p className="error">{error}</p>;
  if (!items) return <p className="loading">Loading…</p>;
  if (items.length === 0 && dir === "") return <p className="empty">Nothing in this folder yet.</p>;
  return (
    <ul className="tree">
      {items.map((item) => {
        const isDir = item.kind === "directory";
        const expanded = open.has(item.path);
        return (
          <li key={item.path}>
            {isDir ? (
              <button
                type="button"
                className="expand"
                aria-expanded={expanded}
                aria-label={`${expanded ? "Collapse" : "Expand"} ${item.path}`}
                onClick={() => {
                  const o = new Set(open);
                  if (expanded) o.delete(item.path);
                  else o.add(item.path);
                  setOpen(o);
                }}
              >
                {expanded ? "▾" : "▸"}
              </button>
            ) : (
              <span className="expand" />
            )}
            <label className="check">
              <input
                type="checkbox"
                aria-label={`Sync ${item.path}`}
                checked={item.selected}
                disabled={props.busy}
                ref={(el) => {
                  if (el) el.indeterminate = item.partial;
                }}
                onChange={() => props.onToggle(item)}
              />
              <span className="mono">{item.name}{isDir ? "/" : ""}</span>
            </label>{" "}
            <span className="muted small">
              {bytes(item.size)}, {item.local ? "on this device" : "not on this device"}
              {item.devices.length > 0 && `, on ${item.devices.map(shortId).join(", ")}`}
            </span>
            {expanded && <TreeLevel {...props} dir={item.path} />}
          </li>
        );
      })}
      {next !== null && (
        <li>
          <button type="button" onClick={() => loadFrom(next, items)}>
            More…
          </button>
        </li>
      )}
    </ul>
  );
}
