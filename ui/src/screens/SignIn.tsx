import { useEffect, useState } from "react";
import { client } from "../App";
import { errorText } from "../client";

/** Signing in: user and password, or the API key (from config.toml or `peerfold gui url`). */
export function SignIn(props: { initialError?: string; onSignedIn: () => void }) {
  const [error, setError] = useState(props.initialError);
  const [passwordSet, setPasswordSet] = useState(true);
  const [withKey, setWithKey] = useState(false);
  const [user, setUser] = useState("");
  const [password, setPassword] = useState("");
  const [key, setKey] = useState("");
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    client
      .session()
      .then((s) => {
        setPasswordSet(s.password_set);
        if (s.user) setUser(s.user);
        if (!s.password_set) setWithKey(true);
      })
      .catch(() => {});
  }, []);

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await client.signIn(withKey ? { api_key: key.trim() } : { user, password });
      props.onSignedIn();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="sign-in">
      <h1>Peerfold</h1>
      <form onSubmit={submit} aria-label="Sign in">
        <h2>Sign in</h2>
        {withKey ? (
          <label>
            API key
            <input type="password" autoComplete="off" value={key} onChange={(e) => setKey(e.target.value)} required />
          </label>
        ) : (
          <>
            <label>
              User
              <input autoComplete="username" value={user} onChange={(e) => setUser(e.target.value)} required />
            </label>
            <label>
              Password
              <input
                type="password"
                autoComplete="current-password"
                value={password}
                onChange={(e) => setPassword(e.target.value)}
                required
              />
            </label>
          </>
        )}
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <button type="submit" className="primary" disabled={busy}>
          Sign in
        </button>
        <p className="hint">
          {passwordSet ? (
            <button type="button" className="link" onClick={() => setWithKey(!withKey)}>
              {withKey ? "Sign in with user and password instead" : "Sign in with the API key instead"}
            </button>
          ) : (
            <>No password is set. Run <code>peerfold gui url</code> on the device for a link that signs you in, or
            set a password with <code>peerfold gui password</code>.</>
          )}
        </p>
      </form>
    </main>
  );
}
