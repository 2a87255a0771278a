# wiihey-bridge: runs src/main.ts with tsx (a dependency), exactly like `npm start`,
# with no build step.
#   docker build -t wiihey-bridge .
#   docker run --rm -p 127.0.0.1:3000:3000 -e ALLOW_ANONYMOUS=true -e MQTT_URL=... wiihey-bridge
# docker-compose.yml runs it with Mosquitto and the simulator.

# Stage 1: production dependencies. The toolchain is for native modules:
# better-sqlite3 compiles from source when its prebuilt binary cannot be
# downloaded. It stays out of the final image.
FROM node:20-bookworm-slim AS deps
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# Stage 2: the same base, so native modules match its Node and glibc.
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json openapi.yaml asyncapi.yaml ./
COPY schema ./schema
COPY src ./src
# The code stays root-owned and read-only for the service; ./data (DATA_DIR's
# default) is the only place it writes. Mount a volume there to keep state.
RUN mkdir data && chown node:node data
USER node
EXPOSE 3000
# HOST=0.0.0.0 so that the port can be published; without API_KEYS the service
# then refuses to start unless ALLOW_ANONYMOUS=true (SPEC §9): publish the port on
# the host's loopback only (-p 127.0.0.1:3000:3000).
# Healthy = ready (SPEC §5 /readyz): subscribed to the broker and the store writable. While the
# broker is unreachable the container is unhealthy, and an orchestrator sends it no traffic.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# node itself, not npm, is the container's process, so SIGTERM (docker stop)
# reaches close-with-grace and the service shuts down cleanly.
CMD ["node", "--import", "tsx", "src/main.ts"]
