import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { call, type SessionInfo } from '../api.ts';

/** Sign-in with an API token: the bootstrap admin token (data dir) or one made with `livegraft token create`. */
export function SignIn(props: { onSignedIn: (s: SessionInfo) => void }): JSX.Element {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      props.onSignedIn(await call<SessionInfo>('POST', '/session', { token: token.trim() }));
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <form class="card" onSubmit={(e) => void submit(e)} aria-labelledby="signin-title">
        <h1 id="signin-title">Livegraft</h1>
        <p class="muted">
          Sign in with an API token. Viewers can look; operators can also roll out; admins can do everything.
        </p>
        <label for="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="current-password"
          value={token}
          onInput={(e) => setToken((e.target as HTMLInputElement).value)}
          required
        />
        {error !== undefined && (
          <p class="error" role="alert" data-testid="signin-error">
            {error}
          </p>
        )}
        <button type="submit" class="button primary" disabled={busy || token.trim() === ''}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <p class="muted small">
          The bootstrap token is in <code>&lt;data-dir&gt;/admin-token</code> on the server. The session cookie lasts 12
          hours.
        </p>
      </form>
    </main>
  );
}
