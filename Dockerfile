# syntax=docker/dockerfile:1
#
# Dray's images: one build stage, two run-time targets.
#
#   docker build --target control-plane -t dray-control-plane .
#   docker build --target agent         -t dray-agent .
#
# Two targets rather than one image with two entry points: the agent is installed in other
# networks, next to each environment's database, and its image then carries only the agent's
# bundle (a few MiB) and none of the control plane's store, migrations, UI or embedded PGlite;
# each image has its own command, ports and volume, so `docker run` needs no argument to pick a
# process. Both targets share the build stage, so building both costs one build.
#
# The build compiles each process's TypeScript into one JavaScript file with esbuild
# (scripts/build-bundles.ts): the run-time images hold no TypeScript, no loader and no
# node_modules beyond PGlite for the control plane. Both run as the unprivileged user `dray`
# (uid/gid 10001).

ARG NODE_VERSION=20.20.2

FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /src
RUN npm install --global pnpm@10.34.8
# The manifests first, so the dependency layer is reused until one of them changes.
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml .npmrc ./
COPY proto/package.json proto/
COPY common/package.json common/
COPY agent/package.json agent/
COPY control-plane/package.json control-plane/
COPY sdk/package.json sdk/
COPY test/package.json test/
COPY bench/package.json bench/
RUN pnpm install --frozen-lockfile
COPY . .
RUN pnpm exec tsx scripts/build-bundles.ts --out /out

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
ENV NODE_ENV=production
RUN groupadd --system --gid 10001 dray \
  && useradd --system --uid 10001 --gid dray --home-dir /nonexistent --no-create-home \
    --shell /usr/sbin/nologin dray \
  && install -d -o dray -g dray -m 0700 /var/lib/dray-control-plane /var/lib/dray-agent
WORKDIR /app

FROM runtime AS agent
# Owned by root and read-only to the process; only the state directory is writable.
COPY --from=build /out/agent /app
# The agent's credential and transformation key live here: mount persistent storage on it.
ENV DRAY_AGENT_STATE_DIR=/var/lib/dray-agent
VOLUME ["/var/lib/dray-agent"]
USER 10001:10001
# SIGTERM drains the tasks in flight (up to DRAY_AGENT_DRAIN_TIMEOUT_MS) before exiting.
STOPSIGNAL SIGTERM
CMD ["node", "--max-semi-space-size=64", "--initial-old-space-size=128", "/app/dist/bin/dray-agent.mjs"]

FROM runtime AS control-plane
COPY --from=build /out/control-plane /app
# Listen beyond the container. The control plane still refuses to start without TLS on both
# servers (DRAY_HTTP_TLS_*, DRAY_GRPC_TLS_*) unless DRAY_ALLOW_INSECURE_BIND=true is set.
ENV DRAY_BIND_HOST=0.0.0.0 \
  DRAY_HTTP_PORT=8080 \
  DRAY_GRPC_PORT=7070 \
  DRAY_DATA_DIR=/var/lib/dray-control-plane
EXPOSE 8080 7070
USER 10001:10001
STOPSIGNAL SIGTERM
CMD ["node", "--max-semi-space-size=64", "--initial-old-space-size=128", "/app/dist/bin/dray-control-plane.mjs"]
