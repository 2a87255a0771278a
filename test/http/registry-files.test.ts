import { isDeepStrictEqual } from 'node:util';
import t from 'tap';
import fc from 'fast-check';
import { checkEntry } from '../../src/devices/registry.js';
import type { RegistryEntry } from '../../src/devices/types.js';
import {
  csvHeader,
  csvRow,
  jsonExportEnd,
  jsonExportStart,
  jsonRow,
  MAX_FILE_ERRORS,
  parseRegistryCsv,
  parseRegistryJson,
  type FileProblem,
  type ParsedFile,
} from '../../src/http/registry-files.js';

// SPEC §11: import reads CSV or a JSON array, reports every bad row by its physical line (the
// header being line 1) with a reason naming the field, and export round-trips through import.

const HEADER = 'deviceId,name,address,latitude,longitude,zone,tags';
const HOSTILE = '<img src=x onerror=alert(1)>';
const RTL = 'Kanal \u200F\u202Eevil\u202C';

const entries = (parsed: ParsedFile): RegistryEntry[] => {
  if (!parsed.ok) throw new Error(`refused: ${JSON.stringify(parsed.errors.slice(0, 3))}`);
  return parsed.entries;
};
const errors = (parsed: ParsedFile): FileProblem[] => (parsed.ok ? [] : parsed.errors);
const e = (deviceId: string, fields: Partial<RegistryEntry> = {}): RegistryEntry => ({
  deviceId,
  name: null,
  address: null,
  latitude: null,
  longitude: null,
  zone: null,
  tags: [],
  ...fields,
});
const exportCsv = (list: RegistryEntry[]) => csvHeader() + list.map(csvRow).join('');
const exportJson = (list: RegistryEntry[]) => jsonExportStart + list.map((entry, i) => jsonRow(entry, i === 0)).join('') + jsonExportEnd(list.length === 0);

t.test('CSV: a plain file, in any column order, with unknown columns ignored', async (t) => {
  const csv = `${HEADER}\r\nd1,Schacht 7,Hauptstr. 5,52.517,13.388,Mitte,storm|north\r\nd2,,,,,,\r\n`;
  t.same(entries(parseRegistryCsv(csv)), [
    e('d1', { name: 'Schacht 7', address: 'Hauptstr. 5', latitude: 52.517, longitude: 13.388, zone: 'Mitte', tags: ['storm', 'north'] }),
    e('d2'),
  ]);
  const shuffled = ' Tags ,colour,DEVICEID, zone\nx|y,red,d1,Mitte\n';
  t.same(entries(parseRegistryCsv(shuffled)), [e('d1', { zone: 'Mitte', tags: ['x', 'y'] })], 'names trimmed, any case, unknown columns ignored');
  t.same(entries(parseRegistryCsv('deviceId\nd1\nd2')), [e('d1'), e('d2')], 'one column, no final line end');
  t.same(entries(parseRegistryCsv(`${HEADER}\n`)), [], 'a header alone: no entries');
});

t.test('CSV: semicolons, decimal commas and a BOM', async (t) => {
  const csv = '\uFEFFdeviceId;name;latitude;longitude;tags\r\nd1;Schacht, 7;52,517;-13,4;a,b|c\r\nd2;;+52.5;1e1;\r\nd3;;,5;5,;\r\n';
  t.same(entries(parseRegistryCsv(csv)), [
    e('d1', { name: 'Schacht, 7', latitude: 52.517, longitude: -13.4, tags: ['a,b', 'c'] }),
    e('d2', { latitude: 52.5, longitude: 10 }),
    e('d3', { latitude: 0.5, longitude: 5 }),
  ]);
  t.same(errors(parseRegistryCsv('deviceId;latitude;longitude\nd1;1,2,3;4\nd2;1.5,5;4\n')), [
    { line: 2, reason: "latitude is not a number: '1,2,3'" },
    { line: 3, reason: "latitude is not a number: '1.5,5'" },
  ]);
  t.same(errors(parseRegistryCsv('deviceId,latitude,longitude\nd1,"52,5",4\n')), [{ line: 2, reason: "latitude is not a number: '52,5'" }], 'no decimal comma with the comma delimiter');
  t.same(entries(parseRegistryCsv('deviceId;"a,b";zone\nd1;x;Mitte\n')), [e('d1', { zone: 'Mitte' })], 'a comma inside quotes does not choose the delimiter');
  t.same(entries(parseRegistryCsv('deviceId,"a;b",zone\nd1,x,Mitte\n')), [e('d1', { zone: 'Mitte' })], 'nor does a semicolon');
});

t.test('CSV: RFC 4180 quoting, and line numbers after a record that spans lines', async (t) => {
  const csv = [
    HEADER,
    'd1,"Schacht, ""7""","Hauptstr. 5',
    '10115 Berlin",,,,',
    'd2,"a ""quoted"" name",,,,"z,1","t,1|t""2"',
    '',
    'd3,"two',
    '',
    'blank lines inside",,,,,',
    'd4,,,nope,1,,',
    '',
  ].join('\r\n');
  const parsed = parseRegistryCsv(csv);
  t.same(errors(parsed), [{ line: 9, reason: "latitude is not a number: 'nope'" }], 'd4 starts on physical line 9');
  const good = entries(parseRegistryCsv(csv.replace('nope', '1')));
  t.same(good, [
    e('d1', { name: 'Schacht, "7"', address: 'Hauptstr. 5\n10115 Berlin' }),
    e('d2', { name: 'a "quoted" name', zone: 'z,1', tags: ['t,1', 't"2'] }),
    e('d3', { name: 'two\n\nblank lines inside' }),
    e('d4', { latitude: 1, longitude: 1 }),
  ], 'a quoted CR LF is read as LF: the entry holds the address, not the line end of the file');
  t.same(entries(parseRegistryCsv('deviceId,name\nd1,"a\nb"\nd2,"c\r\nd"\n')).map((x) => x.name), ['a\nb', 'c\nd'], 'LF and CR LF in one file');
  t.same(entries(parseRegistryCsv('deviceId,name\nd1,a"b\n')), [e('d1', { name: 'a"b' })], 'a quote inside an unquoted field is text');
  t.same(entries(parseRegistryCsv('deviceId,name\nd1,""\n')), [e('d1')], 'a quoted empty cell is empty');
});

t.test('CSV: empty lines are skipped but counted', async (t) => {
  const csv = 'deviceId,latitude,longitude\n\nd1,1,1\r\n\r\n\n\nd2,x,1\n\n';
  t.same(errors(parseRegistryCsv(csv)), [{ line: 7, reason: "latitude is not a number: 'x'" }]);
  t.same(entries(parseRegistryCsv(csv.replace('x', '2'))).map((x) => x.deviceId), ['d1', 'd2']);
});

t.test('CSV: a missing header is one error at line 1', async (t) => {
  const reason = 'the first line must be a header naming deviceId, and any of name, address, latitude, longitude, zone, tags';
  for (const csv of ['', '\uFEFF', '\n', '\r\ndeviceId\nd1', 'd1,Schacht 7,Hauptstr. 5\nd2,x,y', 'name,zone\nx,y', 'device id,name\nd1,x', '"deviceId\nd1\n']) {
    t.same(errors(parseRegistryCsv(csv)), [{ line: 1, reason }], JSON.stringify(csv));
  }
  t.same(errors(parseRegistryCsv('deviceId,name,Name\nd1,x,y')), [{ line: 1, reason: 'the header names name twice' }]);
});

t.test('CSV: a record with more or fewer fields than the header is an error for its line', async (t) => {
  const csv = 'deviceId,name,zone\nd1,a,b\nd2,a\nd3,a,b,c\nd4,a,b,\nd5,"x,y",z\n';
  t.same(errors(parseRegistryCsv(csv)), [
    { line: 3, reason: '2 fields where the header has 3' },
    { line: 4, reason: '4 fields where the header has 3' },
    { line: 5, reason: '4 fields where the header has 3' },
  ]);
});

t.test('CSV: quoting mistakes name the field and the line it started on', async (t) => {
  t.same(errors(parseRegistryCsv('deviceId,name,address\nd1,x,y\nd2,"open\n\nnever closed,z\nd3,x,y\n')), [{ line: 3, reason: 'name opens a quote that is never closed' }]);
  t.same(errors(parseRegistryCsv('deviceId,name,address\nd1,"x"y,z\nd2,x,"a"b\n')), [
    { line: 2, reason: 'name has text after its closing quote' },
    { line: 3, reason: 'address has text after its closing quote' },
  ]);
  t.same(errors(parseRegistryCsv('deviceId\nd1,"x\n')), [{ line: 2, reason: 'field 2 opens a quote that is never closed' }]);
});

t.test('CSV: coordinates are read strictly', async (t) => {
  for (const cell of ['12abc', '0x10', ' 1', '1 ', 'NaN', 'Infinity', '1e', '--1', '.', '1.2.3', '١٢']) {
    t.same(errors(parseRegistryCsv(`deviceId,latitude,longitude\nd1,"${cell}",1\n`)), [{ line: 2, reason: `latitude is not a number: '${cell}'` }], cell);
  }
  for (const [cell, value] of [['-90', -90], ['90', 90], ['+0', 0], ['-0', 0], ['1.', 1], ['.5', 0.5], ['5E-1', 0.5], ['0.1e+2', 10]] as const) {
    t.ok(Object.is(entries(parseRegistryCsv(`deviceId,latitude,longitude\nd1,${cell},${cell}\n`))[0]!.latitude, value), cell);
  }
  t.same(errors(parseRegistryCsv('deviceId,latitude,longitude\nd1,90.5,1\nd2,1,-180.01\nd3,1e400,1\nd4,1,\n')), [
    { line: 2, reason: 'latitude must be a number from -90 to 90' },
    { line: 3, reason: 'longitude must be a number from -180 to 180' },
    { line: 4, reason: 'latitude must be a number from -90 to 90' },
    { line: 5, reason: 'latitude and longitude go together: set both or neither' },
  ]);
  const long = `${'9'.repeat(30)}${'\u{1F573}'.repeat(30)}`;
  t.same(errors(parseRegistryCsv(`deviceId,latitude,longitude\nd1,1,${long}\n`)), [{ line: 2, reason: `longitude is not a number: '${'9'.repeat(30)}${'\u{1F573}'.repeat(10)}…'` }], 'at most 40 code points quoted');
});

t.test('CSV: tags split on |; every row goes through checkEntry', async (t) => {
  t.same(entries(parseRegistryCsv('deviceId,tags\nd1,a|b c|d\nd2,\nd3,solo\n')).map((x) => x.tags), [['a', 'b c', 'd'], [], ['solo']]);
  t.same(errors(parseRegistryCsv('deviceId,tags,zone\nd1,a||b,\nd2,a|a,\nd3,x,"a\nb"\n,x,\n')), [
    { line: 2, reason: 'tags must each be 1 to 64 characters' },
    { line: 3, reason: "tags must not repeat 'a'" },
    { line: 4, reason: 'zone must not hold control characters' },
    { line: 6, reason: 'deviceId must be 1 to 128 characters' },
  ]);
  t.same(errors(parseRegistryCsv(`deviceId,tags\nd1,${Array.from({ length: 33 }, (_, i) => `t${i}`).join('|')}\n`)), [{ line: 2, reason: 'tags must be at most 32' }]);
});

t.test('CSV: a bad latitude on line 3 of a 1,000-row file is exactly one error', async (t) => {
  const rows = Array.from({ length: 1000 }, (_, i) => `d${i},Schacht ${i},,${i === 1 ? '95' : '52.5'},13.4,Mitte,a|b`);
  const parsed = parseRegistryCsv(`${HEADER}\n${rows.join('\n')}\n`);
  t.same(errors(parsed), [{ line: 3, reason: 'latitude must be a number from -90 to 90' }]);
});

t.test('CSV: every bad row is reported, each once, capped at 1000', async (t) => {
  const csv = 'deviceId,name,latitude,longitude\nd1,ok,1,1\nd2,,x,1\nd3,ok,1,1\nd4,,1,200\n"d5,ok,1,1\n';
  t.same(errors(parseRegistryCsv(csv.replace('"d5', 'd5'))), [
    { line: 3, reason: "latitude is not a number: 'x'" },
    { line: 5, reason: 'longitude must be a number from -180 to 180' },
  ]);
  const bad = Array.from({ length: 2500 }, (_, i) => `d${i},,x,1`).join('\n');
  const many = errors(parseRegistryCsv(`deviceId,name,latitude,longitude\n${bad}\n`));
  t.equal(MAX_FILE_ERRORS, 1000);
  t.equal(many.length, 1000);
  t.same(many[999], { line: 1001, reason: "latitude is not a number: 'x'" });
});

t.test('CSV: a deviceId twice is an error at the later line, even when the first row is bad', async (t) => {
  const csv = 'deviceId,latitude,longitude\nd1,1,1\nd2,x,1\nd1,2,2\nd3,1,1\nd2,1,1\nd1,3,3\n';
  t.same(errors(parseRegistryCsv(csv)), [
    { line: 3, reason: "latitude is not a number: 'x'" },
    { line: 4, reason: "deviceId 'd1' is already on line 2" },
    { line: 6, reason: "deviceId 'd2' is already on line 3" },
    { line: 7, reason: "deviceId 'd1' is already on line 2" },
  ]);
  t.ok(parseRegistryCsv('deviceId\nd1\nD1\n').ok, 'deviceIds are case-sensitive, as everywhere');
});

t.test('CSV: 10,000 rows', async (t) => {
  const list = Array.from({ length: 10_000 }, (_, i) => e(`dev-${i}`, { name: `Schacht ${i}`, address: `Hauptstr. ${i}\n10115 Berlin`, latitude: 52 + i / 1e5, longitude: 13.4, zone: `z${i % 7}`, tags: ['a', `t${i % 3}`] }));
  const parsed = entries(parseRegistryCsv(exportCsv(list)));
  t.equal(parsed.length, 10_000);
  t.same(parsed[9999], list[9999]);
  t.equal(entries(parseRegistryJson(exportJson(list))).length, 10_000);
});

t.test('JSON: the line of each element in a pretty-printed array', async (t) => {
  const list = [e('d1', { name: 'x' }), e('d2', { latitude: 95, longitude: 1 }), e('d3', { tags: ['a', 'a'] }), e('d1')];
  const text = `\uFEFF${JSON.stringify(list, null, 2)}\n`;
  t.same(text.split('\n').flatMap((line, i) => (line === '  {' ? [i + 1] : [])), [2, 11, 20, 32], 'where the elements start');
  t.same(errors(parseRegistryJson(text)), [
    { line: 11, reason: 'latitude must be a number from -90 to 90' },
    { line: 20, reason: "tags must not repeat 'a'" },
    { line: 32, reason: "deviceId 'd1' is already on line 2" },
  ]);
  const odd = '[{"deviceId":"d1"}, 3,\n\n  "x", null, [ {"deviceId":"d9"} ],\n  {\n"deviceId": "a\\"],{\\n"}, {"name": "no id"}, {"deviceId": 7},\n{"deviceId": "d1", "latitude": "52.5", "longitude": 1}]';
  t.same(errors(parseRegistryJson(odd)), [
    { line: 1, reason: 'entry must be a JSON object' },
    { line: 3, reason: 'entry must be a JSON object' },
    { line: 3, reason: 'entry must be a JSON object' },
    { line: 3, reason: 'entry must be a JSON object' },
    { line: 4, reason: 'deviceId must not hold control characters' },
    { line: 5, reason: 'deviceId must be a string' },
    { line: 5, reason: 'deviceId must be a string' },
    { line: 6, reason: 'latitude must be a number from -90 to 90' },
  ], 'brackets, commas and escaped quotes inside strings are not structure');
});

t.test('JSON: an element is an entry, its deviceId checked like any other field', async (t) => {
  t.same(entries(parseRegistryJson('[{"deviceId":"d1","name":"","zone":null,"colour":"red","tags":["x"]},{"deviceId":"d2","latitude":-90,"longitude":180}]')), [
    e('d1', { tags: ['x'] }),
    e('d2', { latitude: -90, longitude: 180 }),
  ]);
  t.same(entries(parseRegistryJson(' [ ] ')), []);
  t.same(errors(parseRegistryJson('[{"deviceId":""},{"deviceId":"a\\u0000"},{"deviceId":"\\ud800"},{"deviceId":"x","name":"\\udfff"}]')).map((p) => p.reason), [
    'deviceId must be 1 to 128 characters',
    'deviceId must not hold control characters',
    'deviceId must be well-formed Unicode (no lone surrogate)',
    'name must be well-formed Unicode (no lone surrogate)',
  ]);
});

t.test('JSON: not an array, or not JSON: one error, at the mistake when it can be told', async (t) => {
  for (const text of ['{"deviceId":"d1"}', '"d1"', 'null', '\uFEFF3']) {
    t.same(errors(parseRegistryJson(text)), [{ line: 1, reason: 'the file must be a JSON array of entries' }], text);
  }
  const cases: [string, number, string][] = [
    ['', 1, 'Unexpected end of JSON input'],
    ['[\n  {"deviceId": "d1"},\n]\n', 3, "Unexpected token ']'"],
    ['[\n  {"deviceId": "d1"}\n  {"deviceId": "d2"}\n]', 3, "Expected ',' or ']' after array element"],
    ['[\n  {"deviceId": "d1",}\n]', 2, 'Expected double-quoted property name'],
    ['[\n\n  {"deviceId": tru}\n]', 3, "Unexpected token '}'"],
    ['[\n  {"deviceId": "d1"}', 2, "Expected ',' or ']' after array element"],
    ['deviceId,name\nd1,x', 1, "Unexpected token 'd'"],
  ];
  for (const [text, line, message] of cases) {
    const problems = errors(parseRegistryJson(text));
    t.equal(problems.length, 1, JSON.stringify(text));
    t.equal(problems[0]?.line, line, `${JSON.stringify(text)}: line`);
    t.equal(problems[0]?.reason, `the file is not valid JSON: ${message}`);
  }
});

t.test('hostile-looking text goes in and out as written', async (t) => {
  const list = [
    e(HOSTILE, { name: HOSTILE, address: `${RTL}\n"; DROP TABLE x; --`, zone: '\u202Eenoz', tags: [HOSTILE, '\u200F', '=cmd()'] }),
    e(RTL, { name: '=HYPERLINK("http://x")', address: ' leading and trailing ', latitude: -0.000001, longitude: 1e-7 }),
  ];
  t.same(entries(parseRegistryCsv(exportCsv(list))), list);
  t.same(entries(parseRegistryJson(exportJson(list))), list);
  const big = `deviceId,name\nd1,${'x'.repeat(10_240)}\n`;
  t.same(errors(parseRegistryCsv(big)), [{ line: 2, reason: 'name must be at most 200 characters' }], 'a 10 KB name');
  t.same(errors(parseRegistryJson(`[{"deviceId":"d1","name":"${'x'.repeat(10_240)}"}]`)), [{ line: 1, reason: 'name must be at most 200 characters' }]);
});

t.test('export: the exact text', async (t) => {
  t.equal(csvHeader(), 'deviceId,name,address,latitude,longitude,zone,tags\r\n');
  t.equal(csvRow(e('d1')), 'd1,,,,,,\r\n');
  t.equal(
    csvRow(e('d 1', { name: 'a, "b"', address: 'l1\nl2', latitude: 52.517, longitude: -0.5, zone: ' z', tags: ['x', 'y z'] })),
    'd 1,"a, ""b""","l1\nl2",52.517,-0.5," z",x|y z\r\n',
  );
  t.equal(csvRow(e('d1', { name: 'tail ', zone: 'a;b', latitude: 1e-7, longitude: 0 })), 'd1,"tail ",,1e-7,0,a;b,\r\n');
  t.equal(exportJson([]), '[\n]\n');
  t.equal(
    exportJson([e('d1'), e('d2', { name: '"x"', tags: ['a'] })]),
    '[\n{"deviceId":"d1","name":null,"address":null,"latitude":null,"longitude":null,"zone":null,"tags":[]},\n' +
      '{"deviceId":"d2","name":"\\"x\\"","address":null,"latitude":null,"longitude":null,"zone":null,"tags":["a"]}\n]\n',
  );
  const reordered = { tags: [], zone: null, longitude: null, latitude: null, address: null, name: null, deviceId: 'd1' };
  t.equal(jsonRow(reordered, true), jsonRow(e('d1'), true), 'keys in ENTRY_FIELDS order whatever the object');
  t.same(JSON.parse(exportJson([e('d1'), e('d2')])), [e('d1'), e('d2')]);
  t.same(errors(parseRegistryJson(exportJson([e('d1'), e('d2', { latitude: 1 })]))), [{ line: 3, reason: 'latitude and longitude go together: set both or neither' }], 'an export line is an import line');
});

// Text of every kind: any code point, the characters CSV and JSON care about, and now and then one
// the checks refuse (the entries they refuse are left out, so those stay rare enough to keep most).
// Code points without C0 controls, DEL and surrogates: fast-check leans to small ones, mostly controls.
const codePoint = fc
  .integer({ min: 0x20, max: 0x10ffff })
  .filter((c) => c !== 0x7f && (c < 0xd800 || c > 0xdfff))
  .map((c) => String.fromCodePoint(c));
const special = fc.constantFrom(',', ';', '"', '""', '|', ' ', '\uFEFF', '\u200F', '\u202E', '\u2028', '\\', '<', '>', '\u{1F573}');
const refused = fc.constantFrom('\r', '\r\n', '\u0000', '\u007f', '\ud800', '\udc00');
/** Units of text; `lines`: also the line feeds and tabs that names and addresses may hold. */
const unitOf = (lines: boolean) =>
  fc.oneof(
    { arbitrary: codePoint, weight: 30 },
    { arbitrary: special, weight: 10 },
    { arbitrary: fc.constantFrom('\n', '\t'), weight: lines ? 4 : 0 },
    { arbitrary: refused, weight: 1 },
  );
const unit = unitOf(false);
const text = (maxLength: number, lines = false) => fc.string({ unit: unitOf(lines), maxLength });
const coordinates = fc.option(fc.tuple(fc.double({ min: -90, max: 90, noNaN: true }), fc.double({ min: -180, max: 180, noNaN: true })));
const raw = fc.record({
  deviceId: fc.string({ unit, minLength: 1, maxLength: 20 }),
  name: fc.option(text(30, true)),
  address: fc.option(text(30, true)),
  coordinates,
  zone: fc.option(text(10)),
  tags: fc.array(fc.string({ unit, minLength: 1, maxLength: 8 }), { maxLength: 4 }),
});
const valid = fc.uniqueArray(raw, { selector: (r) => r.deviceId, maxLength: 8 }).map((list) =>
  list.flatMap(({ coordinates, ...r }) => {
    const checked = checkEntry(r.deviceId, { ...r, latitude: coordinates?.[0] ?? null, longitude: coordinates?.[1] ?? null });
    return checked.ok ? [checked.entry] : [];
  }),
);

for (const [format, write, read] of [['CSV', exportCsv, parseRegistryCsv], ['JSON', exportJson, parseRegistryJson]] as const) {
  t.test(`property: ${format} export → import → export is byte-identical, entries equal`, async (t) => {
    let kept = 0;
    fc.assert(
      fc.property(valid, (list) => {
        kept += list.length;
        const first = write(list);
        const parsed = read(first);
        return parsed.ok && isDeepStrictEqual(parsed.entries, list) && write(parsed.entries) === first;
      }),
      { numRuns: 500 },
    );
    t.ok(kept >= 300, `${kept} valid entries round-tripped, so the property says something`);
  });
}
