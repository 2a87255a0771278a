// MQTT topic templates (SPEC §2, §6) and filter matching (MQTT 3.1.1 §4.7).

/** Expands comma-separated templates (`{APP_ID}`) into topic filters; throws on an invalid one. */
export function parseTopicTemplates(templates: string, appId: string): string[] {
  const topics = templates
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '')
    .map((t) => t.replaceAll('{APP_ID}', appId));
  if (topics.length === 0) throw new Error('must name at least one topic');
  for (const topic of topics) {
    const problem = filterProblem(topic);
    if (problem !== null) throw new Error(`has an invalid topic filter "${topic}": ${problem}`);
  }
  return [...new Set(topics)];
}

function filterProblem(filter: string): string | null {
  if (Buffer.byteLength(filter) > 65535) return 'too long';
  if (filter.includes('\u0000')) return 'contains a NUL character';
  const levels = stripShare(filter).split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return "'#' must be a whole last level";
    if (level.includes('+') && level !== '+') return "'+' must be a whole level";
  }
  return null;
}

/** `$share/{group}/filter` subscribes to `filter` (SPEC §8). */
function stripShare(filter: string): string {
  if (!filter.startsWith('$share/')) return filter;
  const rest = filter.indexOf('/', '$share/'.length);
  return rest === -1 ? '' : filter.slice(rest + 1);
}

/** Compiles filters into a predicate over topic names: only configured topics reach devices (SPEC §9). */
export function topicMatcher(filters: string[]): (topic: string) => boolean {
  const exact = new Set<string>();
  const patterns: string[][] = [];
  for (const filter of filters.map(stripShare)) {
    if (filter.includes('+') || filter.includes('#')) patterns.push(filter.split('/'));
    else exact.add(filter);
  }
  return (topic) => exact.has(topic) || patterns.some((p) => matchLevels(p, topic));
}

function matchLevels(pattern: string[], topic: string): boolean {
  // MQTT §4.7.2: wildcards at the first level do not match topics that begin with '$'
  if (topic.startsWith('$') && (pattern[0] === '+' || pattern[0] === '#')) return false;
  const levels = topic.split('/');
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    if (p === '#') return true;
    if (i >= levels.length) return false;
    if (p !== '+' && p !== levels[i]) return false;
  }
  return levels.length === pattern.length;
}
