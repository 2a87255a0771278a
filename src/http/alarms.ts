import type { FastifyInstance, FastifyRequest } from 'fastify';
import { MAX_NOTE_CHARACTERS, noteTooLong, type Alarm, type AlarmType, type Severity } from '../devices/alarms.js';
import { decodeAlarmCursor, encodeAlarmCursor } from '../cursor.js';
import { BRG_ERR_ALARM_NOT_FOUND, BRG_ERR_DEVICE_NOT_FOUND, BRG_ERR_INVALID_ACK, BRG_ERR_UNSUPPORTED_MEDIA_TYPE } from '../errors.js';
import { route, type OpenApiDocument } from '../openapi.js';

// SPEC §12 REST: the alarms, newest raisedAt first; acknowledging and clearing by hand are writes
// (app.checkWrite, before the body is read). Each change is an alarm event (devices/service.ts).

interface ListQuerystring {
  status?: Alarm['status'];
  acknowledged?: boolean;
  type?: AlarmType;
  severity?: Severity;
  deviceId?: string;
  zone?: string;
  limit: number;
  cursor?: string;
}

/** GET /devices/{deviceId}/alarms answers at most this many, newest first (GET /alarms?deviceId= pages through all). */
const DEVICE_ALARMS = 1000;

/** The note of an acknowledgement's body (none, `{}` or `{"note": …}`), or a 400 naming what is wrong. */
export function noteOf(body: unknown): string | null {
  if (body === undefined) return null;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new BRG_ERR_INVALID_ACK('the body must be a JSON object, {"note": …}');
  const unknown = Object.keys(body).filter((key) => key !== 'note');
  if (unknown.length > 0) throw new BRG_ERR_INVALID_ACK(`unknown field '${unknown[0]!.slice(0, 64)}': only note is taken`);
  const note = (body as { note?: unknown }).note;
  if (note === undefined || note === null) return null;
  if (typeof note !== 'string') throw new BRG_ERR_INVALID_ACK('note must be a string or null');
  // code points: an emoji counts once; the string's length is an upper bound of their number
  if (noteTooLong(note)) {
    throw new BRG_ERR_INVALID_ACK(`note is longer than ${MAX_NOTE_CHARACTERS} characters`);
  }
  return note;
}

/** The media type of a request, without parameters, in lower case. */
function mediaType(request: FastifyRequest): string {
  return (request.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase();
}

export async function alarmRoutes(app: FastifyInstance, opts: { doc: OpenApiDocument }): Promise<void> {
  const { devices } = app;
  const { store } = devices;

  app.route<{ Querystring: ListQuerystring }>({
    ...route(opts.doc, 'listAlarms'),
    handler: async (request) => {
      const { status, acknowledged, type, severity, deviceId, zone, limit, cursor } = request.query;
      const after = cursor === undefined ? undefined : decodeAlarmCursor(cursor);
      const page = await store.listAlarms({ status, acknowledged, type, severity, deviceId, zone, after, limit });
      return { items: page.items, nextCursor: page.last === null ? null : encodeAlarmCursor(page.last), total: page.total };
    },
  });

  app.route<{ Params: { alarmId: string } }>({
    ...route(opts.doc, 'getAlarm'),
    handler: async (request) => {
      const alarm = await store.getAlarm(request.params.alarmId);
      if (alarm === undefined) throw new BRG_ERR_ALARM_NOT_FOUND(request.params.alarmId);
      return alarm;
    },
  });

  app.route<{ Params: { deviceId: string } }>({
    ...route(opts.doc, 'getDeviceAlarms'),
    handler: async (request) => {
      const { deviceId } = request.params;
      const { items } = await store.listAlarms({ deviceId, limit: DEVICE_ALARMS });
      // a device the bridge forgot (or that only the registry knows) may still have alarms to show
      if (items.length === 0 && (await store.get(deviceId)) === undefined) throw new BRG_ERR_DEVICE_NOT_FOUND(deviceId);
      return { deviceId, items };
    },
  });

  await app.register(async (writes) => writeRoutes(writes, opts));
}

/**
 * The two writes, in a context of their own: JSON or no body at all. Fastify would refuse an
 * empty JSON body (FST_ERR_CTP_EMPTY_JSON_BODY), which `fetch(url, {method: 'POST'})` with a JSON
 * content type sends; and it would parse text/plain, the simple request a foreign page's form can
 * send without a preflight.
 */
async function writeRoutes(app: FastifyInstance, opts: { doc: OpenApiDocument }): Promise<void> {
  const { devices } = app;
  // checked first, before the body is read: a read-only key uploads nothing
  const writeCheck = async (request: FastifyRequest): Promise<void> => app.checkWrite(request);
  const json = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') done(null, undefined);
    else json(request, body as string, done);
  });
  app.addContentTypeParser('*', (request, _payload, done) => done(new BRG_ERR_UNSUPPORTED_MEDIA_TYPE(mediaType(request).slice(0, 100) || '(none)', 'application/json')));

  app.route<{ Params: { alarmId: string }; Body: unknown }>({
    ...route(opts.doc, 'acknowledgeAlarm'),
    onRequest: writeCheck,
    handler: async (request) => {
      const note = noteOf(request.body);
      const alarm = await devices.acknowledgeAlarm(request.params.alarmId, note);
      if (alarm === undefined) throw new BRG_ERR_ALARM_NOT_FOUND(request.params.alarmId);
      request.log.info({ alarmId: alarm.alarmId, deviceId: alarm.deviceId }, 'alarm acknowledged');
      return alarm;
    },
  });

  app.route<{ Params: { alarmId: string } }>({
    ...route(opts.doc, 'clearAlarm'),
    onRequest: writeCheck,
    handler: async (request) => {
      const alarm = await devices.clearAlarm(request.params.alarmId);
      if (alarm === undefined) throw new BRG_ERR_ALARM_NOT_FOUND(request.params.alarmId);
      request.log.info({ alarmId: alarm.alarmId, deviceId: alarm.deviceId }, 'alarm cleared by hand');
      return alarm;
    },
  });
}
