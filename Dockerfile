# The Livegraft patch server as a container image:
#   docker build -t livegraft-server .
#   docker compose up            (with PostgreSQL, see compose.yaml)
# It runs the same tarball that "npm run package" builds (docs/deploy.md).

FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY . .
RUN npm ci --no-fund --no-audit --loglevel=error \
 && npm run build \
 && npm run package

FROM debian:bookworm-slim
RUN useradd --system --home-dir /var/lib/livegraft-server --shell /usr/sbin/nologin livegraft \
 && mkdir -p /var/lib/livegraft-server \
 && chown livegraft:livegraft /var/lib/livegraft-server \
 && chmod 0700 /var/lib/livegraft-server
COPY --from=build /src/out/livegraft-server_*_linux-x64.tar.gz /tmp/livegraft-server.tar.gz
RUN tar -C /opt -xzf /tmp/livegraft-server.tar.gz \
 && rm /tmp/livegraft-server.tar.gz
USER livegraft
VOLUME ["/var/lib/livegraft-server"]
EXPOSE 8720
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
  CMD ["/opt/livegraft-server/lib/node", "-e", "fetch('http://127.0.0.1:8720/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["/opt/livegraft-server/bin/livegraft-server", "--data-dir", "/var/lib/livegraft-server", "--host", "0.0.0.0", "--port", "8720"]
