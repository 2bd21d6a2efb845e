// How values of the API (proto JSON) are shown: locale times, relative ages, states.

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const timeOnly = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "short" });
const numberFormat = new Intl.NumberFormat();

export const STATES = ["waiting", "active", "delayed", "completed", "failed", "cancelled"];

/** "JOB_STATE_FAILED" -> "failed". */
export function stateName(value) {
  if (!value) return "unknown";
  return String(value).replace(/^JOB_STATE_/, "").toLowerCase();
}

/** "JOB_KIND_SEND" -> "send"; "PARSE_MODE_HTML" -> "html". */
export function enumName(value, prefix) {
  if (!value) return "";
  const name = String(value);
  return (name.startsWith(prefix) ? name.slice(prefix.length) : name).toLowerCase();
}

/** int64 fields arrive as strings: a Number for arithmetic (counts stay far below 2^53). */
export function int(value) {
  const n = Number(value ?? 0);
  return Number.isFinite(n) ? n : 0;
}

export function formatNumber(value) {
  return numberFormat.format(int(value));
}

/** "12.500s" -> 12.5 (seconds); undefined -> null. */
export function durationSeconds(value) {
  if (value === undefined || value === null || value === "") return null;
  const n = Number.parseFloat(String(value));
  return Number.isFinite(n) ? n : null;
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.round(seconds);
  const parts = (big, bigUnit, small, smallUnit) => (small ? `${big} ${bigUnit} ${small} ${smallUnit}` : `${big} ${bigUnit}`);
  if (s < 60) return `${s} s`;
  if (s < 3600) return parts(Math.floor(s / 60), "min", s % 60, "s");
  if (s < 86400) return parts(Math.floor(s / 3600), "h", Math.floor((s % 3600) / 60), "min");
  return parts(Math.floor(s / 86400), "d", Math.floor((s % 86400) / 3600), "h");
}

export function parseTime(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

export function formatTime(value) {
  const d = value instanceof Date ? value : parseTime(value);
  return d ? dateTime.format(d) : "—";
}

export function formatClock(date) {
  return timeOnly.format(date);
}

/** "3 min ago", "in 20 sec". */
export function formatAge(value, now = Date.now()) {
  const d = value instanceof Date ? value : parseTime(value);
  if (!d) return "";
  const diff = (d.getTime() - now) / 1000;
  const abs = Math.abs(diff);
  if (abs < 60) return relative.format(Math.round(diff), "second");
  if (abs < 3600) return relative.format(Math.round(diff / 60), "minute");
  if (abs < 86400) return relative.format(Math.round(diff / 3600), "hour");
  return relative.format(Math.round(diff / 86400), "day");
}

export function truncate(text, max = 80) {
  const t = String(text ?? "");
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

/** What a job's request says in one line: its text, a caption or what kind of media. */
export function jobSummary(job) {
  const req = job.request || {};
  if (req.text) return req.text;
  const items = req.media_group?.items || [];
  if (items.length) {
    const caption = items.find((i) => i.caption)?.caption;
    return caption ? caption : `album of ${items.length}`;
  }
  if (req.media) return `[${enumName(req.media.kind, "MEDIA_KIND_") || "media"}]`;
  const kind = enumName(job.kind, "JOB_KIND_");
  if (kind && kind !== "send") return `[${kind} of ${job.target_job_id || "?"}]`;
  return "";
}
