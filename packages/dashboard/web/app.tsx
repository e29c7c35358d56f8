import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { SessionProbe } from '@livegraft/protocol/dashboard';
import type { ReadSection } from '@livegraft/protocol/dashboard-rules';
import { call, mayRead, setCsrf, whenSignedOut, type SessionInfo } from './api.ts';
import { live } from './live.ts';
import { Link, navigate, useLocation } from './router.tsx';
import { ConfirmHost, ToastHost } from './ui.tsx';
import { SignIn } from './pages/signin.tsx';
import { Overview } from './pages/overview.tsx';
import { Hosts } from './pages/hosts.tsx';
import { HostPage } from './pages/host.tsx';
import { Rollouts } from './pages/rollouts.tsx';
import { Cves } from './pages/cves.tsx';
import { Compliance } from './pages/compliance.tsx';
import { Tripwires } from './pages/tripwires.tsx';
import { Coverage } from './pages/coverage.tsx';
import { Pipeline } from './pages/pipeline.tsx';

/** Pages, with the part of the API each reads: a role that may not read it does not see the link. */
const NAV: [string, string, ReadSection][] = [
  ['/', 'Overview', 'fleet'],
  ['/hosts', 'Hosts', 'fleet'],
  ['/rollouts', 'Patches & rollouts', 'fleet'],
  ['/cves', 'CVEs', 'compliance'],
  ['/pipeline', 'Pipeline', 'pipeline'],
  ['/coverage', 'Coverage', 'pipeline'],
  ['/compliance', 'Compliance', 'compliance'],
  ['/tripwires', 'Tripwires', 'compliance'],
];

function Page(props: { path: string; session: SessionInfo }): JSX.Element {
  const { path, session } = props;
  const parts = path.split('/').filter((p) => p !== '');
  const [first, second] = parts;
  const section = NAV.find(([href]) => href === `/${first ?? ''}`)?.[2];
  if (section !== undefined && !mayRead(session.role, section)) {
    return (
      <section class="card">
        <h1>Not for your role</h1>
        <p class="note" role="note">
          The {session.role} role cannot read this page. <Link href="/">Back to the overview</Link>.
        </p>
      </section>
    );
  }
  if (first === undefined) return <Overview session={session} />;
  if (first === 'hosts' && second !== undefined) return <HostPage id={decodeURIComponent(second)} session={session} />;
  if (first === 'hosts') return <Hosts session={session} />;
  if (first === 'rollouts') return <Rollouts session={session} />;
  if (first === 'cves') return <Cves id={second === undefined ? undefined : decodeURIComponent(second)} />;
  if (first === 'compliance') return <Compliance />;
  if (first === 'tripwires') return <Tripwires />;
  if (first === 'pipeline') return <Pipeline session={session} />;
  if (first === 'coverage') return <Coverage />;
  return (
    <section class="card">
      <h1>Not found</h1>
      <p>
        No page at <code>{path}</code>. <Link href="/">Back to the overview</Link>.
      </p>
    </section>
  );
}

function LiveDot(): JSX.Element {
  const [on, setOn] = useState(live.connected);
  useEffect(() => {
    const off = live.subscribe((e) => e.kind === 'status' && setOn(e.data.connected));
    // It may have connected between the render and this subscription.
    setOn(live.connected);
    return off;
  }, []);
  return (
    <span
      class={`live ${on ? 'on' : 'off'}`}
      data-live={on ? 'on' : 'off'}
      title={on ? 'live updates on' : 'reconnecting…'}
    >
      {on ? 'live' : 'offline'}
    </span>
  );
}

export function App(): JSX.Element {
  const { path } = useLocation();
  const [session, setSession] = useState<SessionInfo | null | undefined>(undefined);

  const signedIn = (s: SessionInfo): void => {
    setCsrf(s.csrfToken);
    setSession(s);
    live.start();
  };
  const signedOut = (): void => {
    setCsrf(undefined);
    live.stop();
    setSession(null);
  };

  useEffect(() => {
    whenSignedOut(signedOut);
    // Asks without a 401 when nobody is signed in (the browser would log it as an error).
    call<SessionProbe>('GET', '/dashboard/session').then(
      (p) => (p.session === null ? signedOut() : signedIn(p.session)),
      () => signedOut(),
    );
  }, []);

  if (session === undefined) return <main class="boot">Loading…</main>;
  if (session === null) return <SignIn onSignedIn={signedIn} />;

  const signOut = async (): Promise<void> => {
    await call('DELETE', '/session').catch(() => {});
    signedOut();
    navigate('/', true);
  };
  const current = (href: string): boolean => (href === '/' ? path === '/' : path.startsWith(href));
  return (
    <>
      <header class="topbar">
        <Link href="/" class="brand">
          Livegraft
        </Link>
        <nav aria-label="main">
          {NAV.filter(([, , section]) => mayRead(session.role, section)).map(([href, label]) => (
            <Link key={href} href={href} class={current(href) ? 'active' : undefined}>
              {label}
            </Link>
          ))}
        </nav>
        <div class="who">
          <LiveDot />
          <span class="user" data-role={session.role}>
            {session.name} <span class="role">{session.role}</span>
          </span>
          <button type="button" class="button small" onClick={() => void signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <main>
        <Page path={path} session={session} />
      </main>
      <ConfirmHost />
      <ToastHost />
    </>
  );
}
