import { useEffect, useState } from "react";
import { client, useLive, useLiveAction } from "../App";
import { autostart, errorText, isTauri } from "../client";
import type { Day, ScheduleRule } from "../client";
import { kibps } from "../format";
import { Outcome, useAction } from "../components";

/** This device's name, how signing in works (browser) or starting at login (desktop app). */
export function Settings(props: { onSignOut: () => void }) {
  const action = useAction();
  const app = isTauri();
  return (
    <>
      <h1>Settings</h1>
      <DeviceName />
      <Bandwidth />
      <Schedule />
      <PowerPauses />
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

/** The global limits (KiB/s, 0 for none) and whether they apply on the LAN. */
function Bandwidth() {
  const live = useLive();
  const [action, act] = useLiveAction();
  const b = live.status?.bandwidth;
  const [send, setSend] = useState("0");
  const [recv, setRecv] = useState("0");
  const [lan, setLan] = useState(false);
  useEffect(() => {
    if (!b) return;
    setSend(String(b.configured_send_kibps));
    setRecv(String(b.configured_recv_kibps));
    setLan(b.limit_lan);
  }, [b?.configured_send_kibps, b?.configured_recv_kibps, b?.limit_lan]);
  return (
    <form
      className="card form"
      aria-label="Bandwidth"
      onSubmit={async (e) => {
        e.preventDefault();
        await act(() =>
          client.setLimits({ max_send_kibps: Number(send) || 0, max_recv_kibps: Number(recv) || 0, limit_lan: lan }),
        );
      }}
    >
      <h2>Bandwidth</h2>
      <p>Limits for all devices together, in KiB/s; 0 is unlimited. A device's own limits are set on its card.</p>
      <label>
        Send at most (KiB/s)
        <input type="number" min="0" value={send} onChange={(e) => setSend(e.target.value)} />
      </label>
      <label>
        Receive at most (KiB/s)
        <input type="number" min="0" value={recv} onChange={(e) => setRecv(e.target.value)} />
      </label>
      <label className="check">
        <input type="checkbox" checked={lan} onChange={(e) => setLan(e.target.checked)} />
        Limit devices on the local network too
      </label>
      {b && (
        <p aria-label="Limits in force">
          In force now: send {kibps(b.max_send_kibps)}, receive {kibps(b.max_recv_kibps)}
          {b.rule && !b.rule.pause ? ` (schedule: ${b.rule.window})` : ""}.
        </p>
      )}
      <div className="actions">
        <button type="submit" disabled={action.busy}>
          Save limits
        </button>
      </div>
      <Outcome action={action} />
    </form>
  );
}

const DAYS: Day[] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/** `mon, tue 09:00–17:00: send 100 KiB/s, receive unlimited`. */
function describeRule(r: ScheduleRule): string {
  const days = (r.days ?? []).join(", ") || "every day";
  const what = r.pause
    ? "every device paused"
    : `send ${kibps(r.max_send_kibps ?? 0)}, receive ${kibps(r.max_recv_kibps ?? 0)}`;
  return `${days} ${r.from}–${r.to}: ${what}`;
}

/** `[[options.schedule]]`: listed with the rule in force, each editable and removable; one can be added. */
function Schedule() {
  const live = useLive();
  const action = useAction();
  const b = live.status?.bandwidth;
  const rules = b?.schedule ?? [];
  // The rule being edited (its index), a new one, or none.
  const [editing, setEditing] = useState<number | "new" | null>(null);
  // A refused rule keeps its form open, with the API's sentence below it.
  const save = async (next: ScheduleRule[]) => {
    if (await action.run(() => client.setSchedule(next))) {
      await live.refresh();
      setEditing(null);
    }
  };
  return (
    <section className="card" aria-label="Schedule">
      <h2>Schedule</h2>
      <p>
        Other limits, or a pause, in windows of the week, in this device's local time. A window whose end is not after
        its start runs past midnight. The first rule whose window holds the time is in force.
      </p>
      {rules.length === 0 ? (
        <p>No rules: the limits above hold all the time.</p>
      ) : (
        <ol className="schedule">
          {rules.map((r, i) => (
            <li key={i} aria-label={`Schedule rule ${i + 1}`}>
              {describeRule(r)}
              {b?.rule?.index === i && <strong> (in force now)</strong>}{" "}
              <button type="button" disabled={action.busy} onClick={() => setEditing(i)}>
                Edit
              </button>{" "}
              <button
                type="button"
                disabled={action.busy}
                onClick={() => void save(rules.filter((_, j) => j !== i))}
              >
                Remove
              </button>
            </li>
          ))}
        </ol>
      )}
      {editing === null ? (
        <div className="actions">
          <button type="button" onClick={() => setEditing("new")}>
            Add a rule
          </button>
        </div>
      ) : (
        <RuleForm
          key={String(editing)}
          initial={editing === "new" ? undefined : rules[editing]}
          busy={action.busy}
          onSave={(rule) =>
            void save(editing === "new" ? [...rules, rule] : rules.map((r, j) => (j === editing ? rule : r)))
          }
          onCancel={() => setEditing(null)}
        />
      )}
      <Outcome action={action} />
    </section>
  );
}

/** One schedule rule's fields: days (none: every day), the window, and limits or a pause. */
function RuleForm(props: {
  initial?: ScheduleRule;
  busy: boolean;
  onSave: (r: ScheduleRule) => void;
  onCancel: () => void;
}) {
  const i = props.initial;
  const [days, setDays] = useState<Set<Day>>(new Set(i?.days ?? []));
  const [from, setFrom] = useState(i?.from ?? "09:00");
  const [to, setTo] = useState(i?.to ?? "17:00");
  const [pause, setPause] = useState(i?.pause ?? false);
  const [send, setSend] = useState(String(i?.max_send_kibps ?? 0));
  const [recv, setRecv] = useState(String(i?.max_recv_kibps ?? 0));
  return (
    <form
      className="form"
      aria-label={i ? "Edit schedule rule" : "New schedule rule"}
      onSubmit={(e) => {
        e.preventDefault();
        const rule: ScheduleRule = { days: DAYS.filter((d) => days.has(d)), from, to };
        if (pause) rule.pause = true;
        else {
          rule.max_send_kibps = Number(send) || 0;
          rule.max_recv_kibps = Number(recv) || 0;
        }
        props.onSave(rule);
      }}
    >
      <fieldset className="days">
        <legend>Days (none: every day)</legend>
        {DAYS.map((d) => (
          <label key={d} className="check">
            <input
              type="checkbox"
              checked={days.has(d)}
              onChange={(e) => {
                const next = new Set(days);
                if (e.target.checked) next.add(d);
                else next.delete(d);
                setDays(next);
              }}
            />
            {d}
          </label>
        ))}
      </fieldset>
      <label>
        From (local time)
        <input type="time" value={from} onChange={(e) => setFrom(e.target.value)} required />
      </label>
      <label>
        To (local time)
        <input type="time" value={to} onChange={(e) => setTo(e.target.value)} required />
      </label>
      <label className="check">
        <input type="checkbox" checked={pause} onChange={(e) => setPause(e.target.checked)} />
        Pause every device in this window
      </label>
      {!pause && (
        <>
          <label>
            Send at most in the window (KiB/s)
            <input type="number" min="0" value={send} onChange={(e) => setSend(e.target.value)} />
          </label>
          <label>
            Receive at most in the window (KiB/s)
            <input type="number" min="0" value={recv} onChange={(e) => setRecv(e.target.value)} />
          </label>
        </>
      )}
      <div className="actions">
        <button type="submit" className="primary" disabled={props.busy}>
          Save rule
        </button>
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

/** Pausing every device on a metered network or on battery, and what the system says now. */
function PowerPauses() {
  const live = useLive();
  const [action, act] = useLiveAction();
  const b = live.status?.bandwidth;
  const known = (v: boolean | null | undefined, yes: string, no: string) =>
    v === true ? yes : v === false ? no : "unknown";
  return (
    <section className="card form" aria-label="Metered network and battery">
      <h2>Metered network and battery</h2>
      <p>
        On Linux, NetworkManager says whether the network is metered and UPower whether this device runs on battery.
        Where neither can tell (another system, no such service) nothing is paused.
      </p>
      <label className="check">
        <input
          type="checkbox"
          checked={b?.pause_on_metered ?? false}
          disabled={!b || action.busy}
          onChange={(e) => void act(() => client.setLimits({ pause_on_metered: e.target.checked }))}
        />
        Pause every device on a metered network
        {b?.pause_on_metered && <> (now: {known(b.power.metered, "metered", "not metered")})</>}
      </label>
      <label className="check">
        <input
          type="checkbox"
          checked={b?.pause_on_battery ?? false}
          disabled={!b || action.busy}
          onChange={(e) => void act(() => client.setLimits({ pause_on_battery: e.target.checked }))}
        />
        Pause every device on battery
        {b?.pause_on_battery && <> (now: {known(b.power.on_battery, "on battery", "on mains power")})</>}
      </label>
      <Outcome action={action} />
    </section>
  );
}
