import t from 'tap';
import { readFileSync } from 'node:fs';

// The documents the service parses at run time hold no character beyond Latin-1. A YAML parser
// slicing a two-byte source (one '…' makes the whole text two-byte in V8) creates its keys as
// two-byte strings; V8 internalizes them, and every later JSON.parse of an MQTT payload reuses
// those keys (`DeviceID`, `State`, …): each device's JSON and every event's wire forms then
// took two bytes a character, twice the memory the live clients' byte bounds count (found with
// npm run bench -- stalled).

const PARSED_AT_RUN_TIME = [
  'openapi.yaml',
  'asyncapi.yaml',
  'schema/schema.graphql',
  'schema/device.schema.json',
  'schema/record.schema.json',
  'schema/message.schema.json',
  'schema/history-entry.schema.json',
  'schema/registry-entry.schema.json',
  'schema/alarm.schema.json',
];

for (const file of PARSED_AT_RUN_TIME) {
  t.test(`${file} is Latin-1`, async (t) => {
    const lines = readFileSync(new URL(`../${file}`, import.meta.url), 'utf8').split('\n');
    const beyond = lines.flatMap((line, i) => (/[\u{100}-\u{10ffff}]/u.test(line) ? [`line ${i + 1}: ${line.trim()}`] : []));
    t.same(beyond, [], 'write "..." for an ellipsis, "->" for an arrow');
  });
}
