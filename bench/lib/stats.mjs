/*
 * NAME
 *   stats - medians, percentiles and number formatting for `make bench`
 *
 * SYNOPSIS
 *   median([3, 1, 2]) === 2
 *   percentile(values, 0.99)        // nearest-rank
 *   fmt(1234.5, 0) === '1,235'
 */

/** median - the middle value (mean of the two middle ones for an even count). */
export function median(values) {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** percentile - nearest-rank percentile, p in (0, 1]. */
export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
}

/** fmt - a number with thousands separators and `digits` decimals. */
export function fmt(x, digits = 0) {
  if (!Number.isFinite(x)) return String(x);
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
