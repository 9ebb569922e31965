// Amounts and times as the borrower reads them, in the app's locale. Amounts are integers of minor units from the
// API: placed as a decimal string with string arithmetic and formatted by Intl from that exact string, never
// through a float. Times are unix seconds shown in the phone's own time zone.

const DIGITS = { CNY: 2, JPY: 0, KRW: 0 };

export function minorToDecimal(minor, currency = "CNY") {
  const digits = DIGITS[currency] ?? 2;
  const value = BigInt(minor);
  const negative = value < 0n;
  const text = (negative ? -value : value).toString().padStart(digits + 1, "0");
  const whole = text.slice(0, text.length - digits);
  return (negative ? "-" : "") + (digits ? `${whole}.${text.slice(text.length - digits)}` : whole);
}

export function money(locale, minor, currency = "CNY") {
  if (minor === null || minor === undefined) return "—";
  const digits = DIGITS[currency] ?? 2;
  return new Intl.NumberFormat(locale, { style: "currency", currency, minimumFractionDigits: digits,
                                         maximumFractionDigits: digits }).format(minorToDecimal(minor, currency));
}

// What the borrower types ("1,200.5", "１２００") to minor units; null when it is not an amount.
export function decimalToMinor(text, currency = "CNY") {
  const digits = DIGITS[currency] ?? 2;
  const normal = String(text).normalize("NFKC").replace(/[\s,，]/g, "");
  const match = normal.match(digits ? new RegExp(`^(\\d+)(?:\\.(\\d{0,${digits}}))?$`) : /^(\d+)$/);
  if (!match) return null;
  return Number(BigInt(match[1]) * 10n ** BigInt(digits) + BigInt((match[2] || "").padEnd(digits, "0") || "0"));
}

export function date(locale, seconds) {
  if (!seconds) return "—";
  return new Intl.DateTimeFormat(locale, { year: "numeric", month: "short", day: "numeric" })
    .format(new Date(seconds * 1000));
}

export function dateTime(locale, seconds) {
  if (!seconds) return "—";
  return new Intl.DateTimeFormat(locale, { year: "numeric", month: "short", day: "numeric", hour: "2-digit",
                                           minute: "2-digit" }).format(new Date(seconds * 1000));
}

// "3 hours ago": how old a score or a status is.
export function age(locale, seconds, now = Date.now() / 1000) {
  const delta = Math.round(seconds - now);
  const rtf = new Intl.RelativeTimeFormat(locale, { numeric: "auto" });
  for (const [unit, size] of [["day", 86400], ["hour", 3600], ["minute", 60]]) {
    if (Math.abs(delta) >= size) return rtf.format(Math.round(delta / size), unit);
  }
  return rtf.format(delta, "second");
}
