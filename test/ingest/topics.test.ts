import t from 'tap';
import { parseTopicTemplates, topicMatcher } from '../../src/topics.js';

t.test('templates', async (t) => {
  t.same(parseTopicTemplates('iot/{APP_ID}/inbox,apps/{APP_ID}/inbox,iot/{APP_ID}/inbox', 'a1'), ['iot/a1/inbox', 'apps/a1/inbox']);
  t.same(parseTopicTemplates('$share/g/iot/{APP_ID}/inbox', 'a1'), ['$share/g/iot/a1/inbox']);
  t.throws(() => parseTopicTemplates('a/b#', 'x'), /'#' must be a whole last level/);
  t.throws(() => parseTopicTemplates('a/+b', 'x'), /'\+' must be a whole level/);
  t.throws(() => parseTopicTemplates('', 'x'), /at least one/);
});

t.test('only configured topics match (MQTT §4.7)', async (t) => {
  const match = topicMatcher(['iot/a1/inbox', 'fleet/+/up', 'all/#', '$share/g/shared/x']);
  t.ok(match('iot/a1/inbox'));
  t.notOk(match('iot/a2/inbox'), 'another APP-ID');
  t.notOk(match('iot/a1/inbox/x'));
  t.ok(match('fleet/7/up'));
  t.notOk(match('fleet/7/8/up'));
  t.ok(match('all'), "'#' matches its parent level too");
  t.ok(match('all/a/b'));
  t.ok(match('shared/x'), 'a shared subscription matches its filter');
  const wild = topicMatcher(['#']);
  t.ok(wild('a/b'));
  t.notOk(wild('$SYS/broker/uptime'), "wildcards do not match '$' topics");
});
