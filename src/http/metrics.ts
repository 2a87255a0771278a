import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type GaugeConfiguration } from 'prom-client';
import { route, type OpenApiDocument } from '../openapi.js';
import { ALARM_TYPES, SEVERITIES, type AlarmTransition, type AlarmType } from '../devices/alarms.js';
import type { StoreSummary } from '../devices/store.js';

// SPEC §5/§9: GET /metrics, Prometheus text. Counts are read from the parts that keep them
// (ingest, devices, streams, webhooks) when Prometheus scrapes, so the message path pays nothing;
// only the two histograms are observed as things happen. One registry per app: buildApp() twice
// in a process gives two independent services (prom-client's default registry is a global).

const PREFIX = 'wiihey_bridge_';
/** Device states with a series of their own; a sender inventing states cannot flood Prometheus. */
const MAX_STATE_SERIES = 20;
const ALARM_TRANSITIONS: readonly AlarmTransition[] = ['raised', 'escalated', 'acknowledged', 'cleared'];

export interface MetricsOptions {
  doc: OpenApiDocument;
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Registry;
  }
}

async function metricsPlugin(app: FastifyInstance, opts: MetricsOptions): Promise<void> {
  const registry = new Registry();
  app.decorate('metrics', registry);
  collectDefaultMetrics({ register: registry, prefix: PREFIX });

  // Read at scrape time (prom-client's collect()). The plugins they read are registered after this
  // one; a scrape comes only once the app is ready.
  // prom-client starts every collect() of a scrape at once: they share one read of the store's summary
  // null when the store cannot be read (REDIS_URL, Redis away): its gauges have no sample then,
  // and the rest of the scrape (store_up 0 among them) still answers
  let scrapeSummary: Promise<StoreSummary | null> | null = null;
  const summary = (): Promise<StoreSummary | null> =>
    (scrapeSummary ??= app.devices.store
      .summary()
      .catch(() => null)
      .finally(() => {
        scrapeSummary = null;
      }));
  gauge(registry, 'mqtt_connected', {
    help: '1 while the MQTT connection is up and every topic is subscribed',
    collect() {
      const status = app.ingest.status();
      this.set(status.connected && status.subscribed ? 1 : 0);
    },
  });
  counter(registry, 'mqtt_reconnects_total', 'MQTT connections lost since start', [], () => [[{}, app.ingest.status().reconnects]]);
  // SPEC §8 (REDIS_URL): the shared store, and the times its event log no longer reached back
  gauge(registry, 'store_up', {
    help: '1 while the store can be reached (always, but for REDIS_URL: 0 while Redis is away)',
    collect() {
      this.set(app.devices.problems().length === 0 ? 1 : 0);
    },
  });
  counter(registry, 'event_log_gaps_total', 'Times the shared event log (REDIS_URL) no longer held what this replica had not read: its live clients were reset', [], () => [
    [{}, app.devices.logGaps],
  ]);
  counter(registry, 'messages_received_total', 'MQTT messages received on the subscribed topics', [], () => [[{}, app.ingest.totals.received]]);
  counter(registry, 'messages_total', 'MQTT messages by result (SPEC §4: accepted, duplicate, late; invalid: refused by normalization)', ['result'], () => {
    const { accepted, duplicate, late } = app.devices.counts;
    return [
      [{ result: 'accepted' }, accepted],
      [{ result: 'duplicate' }, duplicate],
      [{ result: 'late' }, late],
      [{ result: 'invalid' }, app.ingest.totals.invalid],
    ];
  });
  counter(registry, 'messages_rejected_total', 'MQTT messages refused, by reason (GET /rejections)', ['reason'], () =>
    Object.entries(app.ingest.rejections.counts()).map(([reason, n]) => [{ reason }, n]),
  );
  gauge(registry, 'devices', {
    help: 'Devices by state',
    labelNames: ['state'],
    async collect() {
      const read = await summary();
      this.reset();
      if (read === null) return;
      const { byState } = read;
      // a state is any string a payload sends: the most common get a series each, the rest are
      // counted in devices_in_other_states
      for (const [state, n] of commonStates(byState).common) this.set({ state }, n);
    },
  });
  gauge(registry, 'devices_in_other_states', {
    help: `Devices in states beyond the ${MAX_STATE_SERIES} most common (wiihey_bridge_devices has a series for each of those)`,
    async collect() {
      const read = await summary();
      if (read === null) this.reset();
      else this.set(commonStates(read.byState).rest);
    },
  });
  gauge(registry, 'devices_silent', {
    help: 'Devices that sent nothing for SILENCE_AFTER_SECONDS',
    async collect() {
      const read = await summary();
      if (read === null) this.reset();
      else this.set(read.silent);
    },
  });
  gauge(registry, 'alarms_active', {
    help: 'Active alarms by type and severity (SPEC §12; every pair, 0 included)',
    labelNames: ['type', 'severity'],
    async collect() {
      const read = await summary();
      if (read === null) {
        this.reset();
        return;
      }
      const { bySeverity } = read.alarms;
      for (const type of ALARM_TYPES) for (const severity of SEVERITIES) this.set({ type, severity }, bySeverity[type]?.[severity] ?? 0);
    },
  });
  gauge(registry, 'alarms_unacknowledged', {
    help: 'Alarms not acknowledged yet, active or cleared',
    async collect() {
      const read = await summary();
      if (read === null) this.reset();
      else this.set(read.alarms.unacknowledged);
    },
  });
  // counted as they pass on the event stream (onReady below: a Map lookup per alarm event); every pair from 0
  const transitions = new Map<string, number>(ALARM_TYPES.flatMap((type) => ALARM_TRANSITIONS.map((transition) => [`${type} ${transition}`, 0] as const)));
  counter(registry, 'alarm_transitions_total', 'Alarm transitions since start, by type and transition (raised, escalated, acknowledged, cleared)', ['type', 'transition'], () =>
    [...transitions].map(([key, n]) => {
      const [type, transition] = key.split(' ') as [AlarmType, AlarmTransition];
      return [{ type, transition }, n];
    }),
  );
  gauge(registry, 'stream_clients', {
    help: 'Open live connections by kind: ws (/ws), sse (/events), graphql (graphql-ws)',
    labelNames: ['kind'],
    collect() {
      const { ws, sse, graphql } = app.liveClients;
      this.set({ kind: 'ws' }, ws.size);
      this.set({ kind: 'sse' }, sse.size);
      this.set({ kind: 'graphql' }, graphql.size);
    },
  });
  counter(registry, 'webhook_deliveries_total', 'Webhook deliveries by result (delivered; retried: an attempt failed and another is due; abandoned: the schedule ran out)', ['result'], () => {
    if (app.webhooks === null) return [];
    const { delivered, retried, abandoned } = app.webhooks.counts;
    return [
      [{ result: 'delivered' }, delivered],
      [{ result: 'retried' }, retried],
      [{ result: 'abandoned' }, abandoned],
    ];
  });
  gauge(registry, 'webhook_deliveries_pending', {
    help: 'Webhook deliveries waiting in the outbox',
    async collect() {
      const pending = app.webhooks === null ? 0 : await app.devices.store.pendingDeliveries().catch(() => null);
      if (pending === null) this.reset();
      else this.set(pending);
    },
  });

  // Observed as things happen
  const latency = new Histogram({
    name: `${PREFIX}event_latency_seconds`,
    help: 'From MQTT receipt to the event handed to every /ws and SSE client (written to their sockets)',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry],
  });
  const batchSize = new Histogram({
    name: `${PREFIX}ingest_batch_size`,
    help: 'Messages per ingest batch: what arrived in one event-loop turn, one store write, then their PUBACKs (SPEC §7)',
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
    registers: [registry],
  });
  const onBatch = (size: number): void => batchSize.observe(size);
  let unsubscribe: (() => void) | null = null;
  app.addHook('onReady', async () => {
    app.ingest.on('batch', onBatch);
    // after every listener of the one event stream: the streams have written the event
    app.devices.events.afterListeners((events) => {
      const now = app.devices.clock.now();
      for (const event of events) if (event.kind === 'update') latency.observe((now - Date.parse(event.device.receivedAt)) / 1000);
    });
    // SPEC §12: alarm transitions, counted as they pass
    unsubscribe = app.devices.events.subscribeBatches((events) => {
      for (const event of events) {
        if (event.kind !== 'alarm') continue;
        const key = `${event.alarm.type} ${event.transition}`;
        const n = transitions.get(key);
        if (n !== undefined) transitions.set(key, n + 1);
      }
    });
  });
  app.addHook('onClose', async () => {
    app.ingest.off('batch', onBatch);
    unsubscribe?.();
  });

  const duration = new Histogram({
    name: `${PREFIX}http_request_duration_seconds`,
    help: 'HTTP requests by route, method and status (a live stream counts once it ends)',
    labelNames: ['method', 'route', 'status_code'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  // a child per label set, found by one string: no label hashing per request
  const children = new Map<string, Histogram.Internal<'method' | 'route' | 'status_code'>>();
  app.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done) => {
    // the route's pattern (never the raw URL: ids would make a series per device); 404s are one
    const routeUrl = request.routeOptions.url ?? 'unmatched';
    const key = `${request.method} ${reply.statusCode} ${routeUrl}`;
    let child = children.get(key);
    if (child === undefined) {
      child = duration.labels(request.method, routeUrl, String(reply.statusCode));
      children.set(key, child);
    }
    child.observe(reply.elapsedTime / 1000);
    done();
  });

  app.route({
    ...route(opts.doc, 'getMetrics'),
    handler: async (_request, reply) => {
      reply.type(registry.contentType);
      return registry.metrics();
    },
  });
}

type Samples = [Record<string, string>, number][];

function commonStates(byState: Record<string, number>): { common: [string, number][]; rest: number } {
  const states = Object.entries(byState).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  return { common: states.slice(0, MAX_STATE_SERIES), rest: states.slice(MAX_STATE_SERIES).reduce((sum, [, n]) => sum + n, 0) };
}

/** A gauge in the app's registry, set at scrape time by its collect(). */
function gauge(registry: Registry, name: string, config: Omit<GaugeConfiguration<string>, 'name' | 'registers'>): Gauge {
  return new Gauge({ ...config, name: `${PREFIX}${name}`, registers: [registry] });
}

/** A counter whose value is kept elsewhere: set from it at scrape time. */
function counter(registry: Registry, name: string, help: string, labelNames: string[], read: () => Samples): Counter {
  return new Counter({
    name: `${PREFIX}${name}`,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of read()) this.inc(labels, value);
    },
  });
}

export default fp(metricsPlugin, { name: 'metrics' });
