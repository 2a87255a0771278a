// The suite's arithmetic, unit-tested in test/bench/stats.test.ts: nothing else in the bench
// decides what a figure is.

/** Nearest-rank percentile of `values` (p in 0..100); NaN for none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** bridge / baseline, rounded to two decimals; NaN when the baseline is 0 or missing. */
export function ratio(bridge: number, baseline: number): number {
  if (!Number.isFinite(bridge) || !Number.isFinite(baseline) || baseline === 0) return Number.NaN;
  return Math.round((bridge / baseline) * 100) / 100;
}

/** Messages published that never came out: never negative (duplicates do not hide losses). */
export function lost(published: number, received: number): number {
  return Math.max(0, published - received);
}

/** Per-second rate of `count` events over `ms`. */
export function perSecond(count: number, ms: number): number {
  return ms <= 0 ? Number.NaN : Math.round((count * 1000) / ms);
}

export interface Latencies {
  p50: number;
  p99: number;
  max: number;
  count: number;
}

export function latencies(ms: readonly number[]): Latencies {
  return {
    p50: round(percentile(ms, 50)),
    p99: round(percentile(ms, 99)),
    max: round(ms.length === 0 ? Number.NaN : ms.reduce((a, b) => (b > a ? b : a), -Infinity)), // no spread: 1e6 values
    count: ms.length,
  };
}

export function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
