import { fileURLToPath } from 'node:url';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { CookieSessions } from '../auth.ts';
import type { App, RouteContext } from '../context.ts';
import type { AuditRepository } from '../db/audit.ts';
import { ActivityHub, activityHooks, activityStreamRoute, auditSince } from './activity.ts';
import { ApplyLog, recordAppliesOnCheckin } from './applies.ts';
import { haltRoute } from './halt-route.ts';
import { dashboardPages } from './pages.ts';
import { cookieSessions, sessionRoutes } from './session-routes.ts';
import { SessionStore } from './sessions.ts';
import { StaticFiles } from './static.ts';
import { dashboardSummaryRoutes } from './summary-routes.ts';

/** The dashboard workspace's build output, next to this package in the repository. */
export const DEFAULT_DASHBOARD_DIR = fileURLToPath(new URL('../../../dashboard/dist/', import.meta.url));

export interface Dashboard {
  /** For the authenticator: requests signed in through the dashboard. */
  cookies: CookieSessions;
  /** Pages, assets and the activity hooks on the root app; call before the API plugin registers. */
  pages(app: App, ctx: RouteContext): void;
  /** Session, activity-stream, halt and summary routes, under the API prefix. */
  api(api: App, ctx: RouteContext): void;
  /** Writes what is still buffered (the apply history); call before the database closes. */
  close(): Promise<void>;
}

/**
 * The web dashboard's server side: serves the built single-page app from
 * `dir` (by default the dashboard workspace's dist), keeps cookie sessions
 * in the database, and streams fleet activity to signed-in browsers.
 */
export function createDashboard(o: {
  db: Kysely<unknown>;
  audit: AuditRepository;
  clock: () => Date;
  log: Logger;
  dir?: string | undefined;
}): Dashboard {
  const store = new SessionStore(o.db, o.clock);
  const files = new StaticFiles(o.dir ?? DEFAULT_DASHBOARD_DIR);
  const applies = new ApplyLog(o.db, o.clock, (err) =>
    o.log.error({ err }, 'could not store applies in the host history; hosts report them again at their next check-in'),
  );
  const hub = new ActivityHub({
    audit: auditSince(o.audit),
    clock: o.clock,
    onError: (err) => o.log.warn({ err }, 'reading the audit log for the activity stream failed'),
  });
  return {
    cookies: cookieSessions(store),
    pages(app, ctx) {
      dashboardPages(app, files);
      activityHooks(app, ctx, hub);
      recordAppliesOnCheckin(app, applies);
      void files.built().then((built) => {
        if (!built) o.log.warn({ dir: files.root }, 'the dashboard is not built (npm run build); / answers 503');
      });
    },
    api(api, ctx) {
      sessionRoutes(api, ctx, store);
      haltRoute(api, ctx);
      activityStreamRoute(api, ctx, hub);
      dashboardSummaryRoutes(api, ctx, o.db, applies, () => hub.changes);
    },
    close: () => applies.flush(),
  };
}
