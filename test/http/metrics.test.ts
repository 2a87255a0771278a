import t from 'tap';
import { request as httpRequest } from 'node:http';
import { buildTestApp, nextEvent, testConfig } from '../helpers/app.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { APP_ID, APP_KEY, TOPIC, message, publisher, startBridge } from '../helpers/bridge.js';
import { WsProbe } from '../helpers/ws.js';
import { record } from '../helpers/records.js';

// SPEC §5/§9: GET /metrics in Prometheus text, from a bridge fed by a real Mosquitto.

/** `name{labels} value` lines, by series (name plus its labels as written). */
function parse(text: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    series.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return series;
}

t.test('metrics of a bridge at work: MQTT, messages by result and reason, devices, clients, latency, HTTP', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY } });
  if (!broker) return;
  const { app } = await startBridge(t, broker);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  const base = `127.0.0.1:${port}`;
  const mqtt = await publisher(t, broker);

  const ws = await WsProbe.open(t, `ws://${base}/ws?snapshot=false`);
  const sse = await new Promise<() => void>((resolve, reject) => {
    const req = httpRequest(`http://${base}/events`, () => resolve(() => req.destroy()));
    req.on('error', reject);
    req.end();
  });
  t.teardown(sse);

  const opened = nextEvent(app, (e) => e.deviceId === 'm-1' && e.device?.state === 'open', 'm-1 open');
  await mqtt.publishAsync(TOPIC, message('m-1', 'open', 1_700_000_000), { qos: 1 });
  await opened;
  const closed = nextEvent(app, (e) => e.deviceId === 'm-2', 'm-2');
  await mqtt.publishAsync(TOPIC, message('m-1', 'open', 1_700_000_000), { qos: 1 }); // a duplicate
  await mqtt.publishAsync(TOPIC, '{"DeviceID":', { qos: 1 }); // not JSON
  await mqtt.publishAsync(TOPIC, message('m-2', 'close', 1_700_000_100), { qos: 1 });
  await closed;
  await ws.next((f) => f.type === 'update' && (f.device as { deviceId: string }).deviceId === 'm-2', 'the /ws update of m-2');
  t.equal((await app.inject('/devices/m-1')).statusCode, 200);
  t.equal((await app.inject('/devices/nobody')).statusCode, 404);

  const res = await app.inject('/metrics');
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  const m = parse(res.body);
  t.equal(m.get('wiihey_bridge_mqtt_connected'), 1);
  t.equal(m.get('wiihey_bridge_mqtt_reconnects_total'), 0);
  t.equal(m.get('wiihey_bridge_store_up'), 1, 'the store can be reached');
  t.equal(m.get('wiihey_bridge_event_log_gaps_total'), 0, 'no shared log, no gap');
  t.equal(m.get('wiihey_bridge_messages_received_total'), 4);
  t.equal(m.get('wiihey_bridge_messages_total{result="accepted"}'), 2);
  t.equal(m.get('wiihey_bridge_messages_total{result="duplicate"}'), 1);
  t.equal(m.get('wiihey_bridge_messages_total{result="late"}'), 0);
  t.equal(m.get('wiihey_bridge_messages_total{result="invalid"}'), 1);
  t.equal(m.get('wiihey_bridge_messages_rejected_total{reason="not_json"}'), 1);
  t.equal(m.get('wiihey_bridge_devices{state="open"}'), 1);
  t.equal(m.get('wiihey_bridge_devices{state="close"}'), 1);
  t.equal(m.get('wiihey_bridge_devices_silent'), 0);
  t.equal(m.get('wiihey_bridge_stream_clients{kind="ws"}'), 1);
  t.equal(m.get('wiihey_bridge_stream_clients{kind="sse"}'), 1);
  t.equal(m.get('wiihey_bridge_stream_clients{kind="graphql"}'), 0);
  t.equal(m.get('wiihey_bridge_event_latency_seconds_count'), 2, 'one latency per event');
  t.ok(m.get('wiihey_bridge_event_latency_seconds_sum')! >= 0);
  t.equal(m.get('wiihey_bridge_event_latency_seconds_bucket{le="+Inf"}'), 2);
  t.equal(m.get('wiihey_bridge_ingest_batch_size_sum'), 4, 'every message taken in a batch');
  t.ok(m.get('wiihey_bridge_ingest_batch_size_count')! >= 1);
  // routes by their pattern, never by the device id in the URL
  t.equal(m.get('wiihey_bridge_http_request_duration_seconds_count{method="GET",route="/devices/:deviceId",status_code="200"}'), 1);
  t.equal(m.get('wiihey_bridge_http_request_duration_seconds_count{method="GET",route="/devices/:deviceId",status_code="404"}'), 1);
  t.notOk([...m.keys()].some((k) => k.includes('m-1') || k.includes('nobody')), 'no series per device');
  t.ok(m.has('wiihey_bridge_process_resident_memory_bytes'), 'process metrics too');
  t.ok(m.has('wiihey_bridge_nodejs_eventloop_lag_p99_seconds'));
  t.equal(m.get('wiihey_bridge_webhook_deliveries_pending'), 0);
});

t.test('/metrics needs a key with API_KEYS, unless METRICS_PUBLIC=true', async (t) => {
  const key = 'k-0123456789abcdef-metrics';
  const closed = await buildTestApp(t, testConfig({ API_KEYS: key }), { connectMqtt: false });
  t.equal((await closed.inject('/metrics')).statusCode, 401);
  t.equal((await closed.inject({ url: '/metrics', headers: { authorization: `Bearer ${key}` } })).statusCode, 200);
  const open = await buildTestApp(t, testConfig({ API_KEYS: key, METRICS_PUBLIC: 'true' }), { connectMqtt: false });
  t.equal((await open.inject('/metrics')).statusCode, 200);
  t.equal((await open.inject('/devices')).statusCode, 401, 'only /metrics is public');
});

t.test('device states are the sender\'s strings: 20 series at most, the rest counted apart', async (t) => {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  await app.ready();
  for (let i = 0; i < 50; i++) {
    for (let k = 0; k <= (i < 20 ? 2 : 0); k++) await app.devices.accept(record({ deviceId: `d-${i}-${k}`, state: `state-${i}` }), Date.now());
  }
  const m = parse((await app.inject('/metrics')).body);
  const series = [...m.keys()].filter((k) => k.startsWith('wiihey_bridge_devices{'));
  t.equal(series.length, 20);
  t.equal(m.get('wiihey_bridge_devices{state="state-0"}'), 3, 'the most common have their own');
  t.notOk(m.has('wiihey_bridge_devices{state="state-20"}'));
  t.equal(m.get('wiihey_bridge_devices_in_other_states'), 30);
});

t.test('two apps in one process keep their own metrics', async (t) => {
  const a = await buildTestApp(t, testConfig(), { connectMqtt: false });
  const b = await buildTestApp(t, testConfig(), { connectMqtt: false });
  await a.ready();
  await b.ready();
  for (let i = 0; i < 3; i++) await a.inject('/stats');
  const series = 'wiihey_bridge_http_request_duration_seconds_count{method="GET",route="/stats",status_code="200"}';
  t.equal(parse((await a.inject('/metrics')).body).get(series), 3);
  t.equal(parse((await b.inject('/metrics')).body).get(series), undefined);
});

t.test('alarms: active by type and severity (every pair, 0 included), unacknowledged, transitions counted', async (t) => {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  await app.ready();
  const scrape = async () => parse((await app.inject('/metrics')).body);
  const active = (type: string, severity: string) => `wiihey_bridge_alarms_active{type="${type}",severity="${severity}"}`;
  const transitions = (type: string, transition: string) => `wiihey_bridge_alarm_transitions_total{type="${type}",transition="${transition}"}`;

  const empty = await scrape();
  for (const type of ['cover_open', 'battery_low', 'silent']) {
    for (const severity of ['warning', 'major', 'critical']) t.equal(empty.get(active(type, severity)), 0, `${type} ${severity} from the start`);
    for (const transition of ['raised', 'escalated', 'acknowledged', 'cleared']) t.equal(empty.get(transitions(type, transition)), 0);
  }
  t.equal(empty.get('wiihey_bridge_alarms_unacknowledged'), 0);

  const T = 1_700_000_000;
  await app.devices.accept(record({ deviceId: 'o1', state: 'open', timestamp: T }), Date.now()); // cover_open major
  await app.devices.accept(record({ deviceId: 'o2', state: 'open', batteryLevel: 1500, timestamp: T }), Date.now()); // + battery_low warning
  await app.devices.accept(record({ deviceId: 'o2', state: 'open', batteryLevel: 500, timestamp: T + 1 }), Date.now()); // escalated to critical
  await app.devices.accept(record({ deviceId: 'x1', state: 'offline', timestamp: T }), Date.now()); // silent major
  await app.devices.accept(record({ deviceId: 'o1', state: 'close', timestamp: T + 2 }), Date.now()); // cover_open cleared
  const silent = (await app.inject('/alarms?type=silent')).json().items[0].alarmId as string;
  await app.inject({ method: 'POST', url: `/alarms/${silent}/ack` });
  await app.inject({ method: 'POST', url: `/alarms/${silent}/clear` });
  app.devices.events.flush();

  const m = await scrape();
  t.equal(m.get(active('cover_open', 'major')), 1, 'o2');
  t.equal(m.get(active('battery_low', 'critical')), 1);
  t.equal(m.get(active('battery_low', 'warning')), 0, 'escalated away');
  t.equal(m.get(active('silent', 'major')), 0, 'cleared by hand');
  t.equal(m.get('wiihey_bridge_alarms_unacknowledged'), 3, 'o1 cover_open (cleared), o2 cover_open and battery_low');
  t.equal(m.get(transitions('cover_open', 'raised')), 2);
  t.equal(m.get(transitions('cover_open', 'cleared')), 1);
  t.equal(m.get(transitions('battery_low', 'raised')), 1);
  t.equal(m.get(transitions('battery_low', 'escalated')), 1);
  t.equal(m.get(transitions('silent', 'raised')), 1);
  t.equal(m.get(transitions('silent', 'acknowledged')), 1);
  t.equal(m.get(transitions('silent', 'cleared')), 1);
  t.equal([...m.keys()].filter((k) => k.startsWith('wiihey_bridge_alarms_active{')).length, 9, 'three types by three severities');
  t.notOk([...m.keys()].some((k) => k.includes('o1') || k.includes(silent)), 'no series per device or alarm');
  await app.close();
  t.equal(app.devices.events.listenerCount, 0, 'the counter let go of the event stream');
});
