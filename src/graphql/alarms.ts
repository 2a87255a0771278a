import type { FastifyInstance } from 'fastify';
import { decodeAlarmCursor, encodeAlarmCursor } from '../cursor.js';
import { MAX_NOTE_CHARACTERS, noteTooLong, type Alarm, type AlarmType, type Severity } from '../devices/alarms.js';
import type { Device } from '../devices/types.js';
import { BRG_ERR_ALARM_NOT_FOUND, BRG_ERR_INVALID_ACK } from '../errors.js';
import { DEVICE_ALARMS, clampLimit } from './limits.js';
import type { GraphqlContext } from './schema.js';

// SPEC §12 GraphQL: Query.alarms and Query.alarm, Device.alarms, and the two writes, as REST has
// them (http/alarms.ts): the same store calls, the same checks in the same order (the key first),
// the same error codes; the cursor (src/cursor.ts) and the note's bound (devices/alarms.ts) are
// shared, so a cursor of GET /alarms pages Query.alarms, and back.

interface AlarmsArgs {
  status?: Alarm['status'] | null;
  acknowledged?: boolean | null;
  type?: AlarmType | null;
  severity?: Severity | null;
  deviceId?: string | null;
  zone?: string | null;
  limit?: number | null;
  cursor?: string | null;
}

export function alarmResolvers(app: FastifyInstance) {
  const store = () => app.devices.store;
  return {
    Query: {
      alarms: async (_: unknown, args: AlarmsArgs) => {
        const page = await store().listAlarms({
          status: args.status ?? undefined,
          acknowledged: args.acknowledged ?? undefined,
          type: args.type ?? undefined,
          severity: args.severity ?? undefined,
          deviceId: args.deviceId ?? undefined,
          zone: args.zone ?? undefined,
          after: args.cursor ? decodeAlarmCursor(args.cursor) : undefined,
          limit: clampLimit(args.limit, 100),
        });
        return { items: page.items, nextCursor: page.last === null ? null : encodeAlarmCursor(page.last), total: page.total };
      },
      alarm: async (_: unknown, args: { alarmId: string }) => (await store().getAlarm(args.alarmId)) ?? null,
    },
    Device: {
      // a store read per device: refused in subscriptions (subscriptions.ts storeFieldsRule), and
      // counted by its limit by the cost rule (10 by default: a page of devices with their alarms
      // stays within GRAPHQL_MAX_ITEMS), DEVICE_ALARMS at most
      alarms: async (device: Device, args: { status?: Alarm['status'] | null; limit?: number | null }) =>
        (await store().listAlarms({ deviceId: device.deviceId, status: args.status ?? undefined, limit: Math.min(DEVICE_ALARMS, clampLimit(args.limit, 10)) })).items,
    },
    // SPEC §9/§12: writes; the key is checked first (a read key learns nothing of the alarm or the note)
    Mutation: {
      acknowledgeAlarm: async (_: unknown, args: { alarmId: string; note?: string | null }, context: GraphqlContext): Promise<Alarm> => {
        app.checkWrite(context.request);
        const note = args.note ?? null;
        // code points: an emoji counts once; the string's length is an upper bound of their number
        if (note !== null && noteTooLong(note)) {
          throw new BRG_ERR_INVALID_ACK(`note is longer than ${MAX_NOTE_CHARACTERS} characters`);
        }
        const alarm = await app.devices.acknowledgeAlarm(args.alarmId, note);
        if (alarm === undefined) throw new BRG_ERR_ALARM_NOT_FOUND(args.alarmId);
        context.request.log.info({ alarmId: alarm.alarmId, deviceId: alarm.deviceId }, 'alarm acknowledged');
        return alarm;
      },
      clearAlarm: async (_: unknown, args: { alarmId: string }, context: GraphqlContext): Promise<Alarm> => {
        app.checkWrite(context.request);
        const alarm = await app.devices.clearAlarm(args.alarmId);
        if (alarm === undefined) throw new BRG_ERR_ALARM_NOT_FOUND(args.alarmId);
        context.request.log.info({ alarmId: alarm.alarmId, deviceId: alarm.deviceId }, 'alarm cleared by hand');
        return alarm;
      },
    },
  };
}
