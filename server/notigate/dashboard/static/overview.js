// The overview: a bot's (or every bot's) counts, lifetime totals, throughput, limiter
// and health, refreshed on live events (at most once a second) and every 10 s.

import { api } from "./api.js";
import { throughputChart } from "./chart.js";
import { fill, h } from "./dom.js";
import { durationSeconds, enumName, formatDuration, formatNumber, int, STATES } from "./format.js";
import { dl, errorBox, refreshInPlace, routeHref, section, table, timeEl } from "./ui.js";

const TOTALS = [
  ["total_enqueued", "Enqueued"],
  ["total_sent", "Sent"],
  ["total_failed", "Failed"],
  ["total_retried", "Retried"],
  ["total_rate_limited", "Rate limited (429)"],
  ["total_stalled", "Stalled"],
  ["total_cancelled", "Cancelled"],
  ["total_duplicates", "Duplicates"],
];

const POLL_MS = 10_000;
const THROTTLE_MS = 1_000;

function count(name, value) {
  // The plain number (no grouping) is the hook tests and scripts read.
  return h("span", { class: "count", dataset: { count: name } }, String(int(value)));
}

function countCards(stats, bot) {
  return h(
    "ul",
    { class: "cards", "aria-label": "Jobs by state" },
    STATES.map((st) =>
      h(
        "li",
        { class: `card card-${st}` },
        h("a", { href: routeHref(`/jobs/${st}`, { bot }), class: "card-link" },
          h("span", { class: "card-label" }, st),
          count(st, stats[st])),
      )),
  );
}

function alertsPanel(stats) {
  const alerts = stats.alerts || [];
  const warnings = stats.warnings || [];
  if (!alerts.length && !warnings.length) {
    return h("div", { class: "notice notice-ok", dataset: { health: "ok" } }, h("strong", {}, "Healthy: "), "no alert is firing.");
  }
  const box = h("div", { class: "health-list" });
  if (alerts.length) {
    box.append(
      h("section", { class: "notice notice-error", "aria-labelledby": "alerts-h", dataset: { alerts: alerts.length } },
        h("h2", { id: "alerts-h" }, `Alerts firing: ${alerts.length}`),
        h("ul", {}, alerts.map((a) =>
          h("li", { dataset: { alert: enumName(a.kind, "ALERT_KIND_") } },
            h("strong", {}, `${enumName(a.kind, "ALERT_KIND_").replace(/_/g, " ")}`),
            a.bot ? ` (bot ${a.bot})` : "", ": ", a.message)))),
    );
  }
  if (warnings.length) {
    box.append(
      h("section", { class: "notice notice-warn", "aria-labelledby": "warnings-h" },
        h("h2", { id: "warnings-h" }, `Warnings: ${warnings.length}`),
        h("ul", {}, warnings.map((w) => h("li", { dataset: { warning: "" } }, w)))),
    );
  }
  return box;
}

function limiterPanel(stats, several) {
  const lim = stats.limiter;
  if (!lim) {
    return section("Limiter",
      h("p", { class: "muted" }, several ? "Each bot has its own limiter: pick a bot to see it." : "The gateway reports no limiter state."),
      dl([[several ? "Bot-wide rates (sum)" : "Bot-wide rate", `${formatNumber(stats.global_rate)} per second`]]));
  }
  const rate = int(lim.rate);
  const sent = int(lim.sent_last_second);
  const paused = stats.paused_until;
  const pauses = lim.chat_pauses || [];
  return section(
    "Limiter",
    dl([
      ["Rate", h("span", {}, count("rate", rate), " per second")],
      ["Sent in the last second", count("sent_last_second", sent)],
      ["Headroom", count("headroom", Math.max(0, rate - sent))],
      ["Paused", paused ? h("span", {}, "until ", timeEl(paused), lim.pause_reason ? ` — ${lim.pause_reason}` : "")
        : h("span", {}, "no")],
      ["Chats held back", count("held_chats", lim.held_chats)],
    ]),
    pauses.length
      ? h("details", { class: "chat-pauses" },
        h("summary", {}, `Chats held longest (${pauses.length})`),
        h("ul", {}, pauses.map((p) => h("li", {}, h("span", { class: "mono" }, p.chat_id), " until ", timeEl(p.until)))))
      : null,
  );
}

function totalsPanel(stats) {
  return section("Lifetime totals", dl(TOTALS.map(([key, label]) => [label, count(key, stats[key])])));
}

function healthPanel(stats, bot) {
  const webhooks = stats.webhooks;
  const retention = stats.retention;
  const pairs = [
    ["Dispatchers alive", count("dispatchers", stats.dispatchers)],
    ["Oldest waiting", formatDuration(durationSeconds(stats.oldest_waiting_age))],
    ["Suppressed chats", h("a", { href: routeHref("/suppressed", { bot }) }, count("suppressed_chats", stats.suppressed_chats), " — see the list")],
  ];
  if (!stats.limiter && stats.paused_until) pairs.push(["Paused until", timeEl(stats.paused_until)]);
  if (retention) {
    pairs.push(["Retention", `${formatNumber(retention.keep_completed)} completed, ${formatNumber(retention.keep_failed)} failed` +
      (retention.keep_age ? `, for ${formatDuration(durationSeconds(retention.keep_age))}` : "")]);
  }
  if (webhooks) {
    pairs.push(
      ["Webhooks pending", count("webhooks_pending", webhooks.pending)],
      ["Webhooks delivered", count("webhooks_delivered", webhooks.delivered)],
      ["Webhooks undeliverable", count("webhooks_undeliverable", webhooks.undeliverable)],
    );
    if (webhooks.oldest_pending_time) pairs.push(["Oldest pending webhook", timeEl(webhooks.oldest_pending_time)]);
  } else {
    pairs.push(["Webhooks", "none configured"]);
  }
  return section("Health", dl(pairs));
}

function botsPanel(stats) {
  const bots = stats.bots || [];
  if (bots.length < 2) return null;
  return section(
    "Bots",
    table({
      caption: "Each bot's figures",
      key: (b) => b.bot,
      rows: bots,
      columns: [
        { label: "Bot", cell: (b) => h("a", { href: routeHref("/", { bot: b.bot }) }, b.bot) },
        { label: "Token", cell: (b) => h("span", { class: `badge ${b.token_ok ? "ok" : "bad"}` }, b.token_ok ? "ok" : "rejected") },
        ...["waiting", "active", "delayed", "failed"].map((k) => ({ label: k, class: "num", cell: (b) => formatNumber(b.stats?.[k]) })),
        { label: "Sent", class: "num", cell: (b) => formatNumber(b.stats?.total_sent) },
        { label: "Alerts", class: "num", cell: (b) => String((b.stats?.alerts || []).length) },
      ],
    }),
  );
}

/** The chart's width: its panel's inside (the panel pads 16 px each side). */
function chartWidth(body) {
  return (body.clientWidth || document.documentElement.clientWidth) - 34;
}

/** Throughput is per bot: the sum view adds every bot's intervals up. */
async function throughputOf(ctx) {
  const bots = ctx.session.bots || [];
  if (ctx.bot || bots.length < 2) return api.throughput(ctx.bot);
  const all = await Promise.all(bots.map((b) => api.throughput(b).catch(() => null)));
  const byStart = new Map();
  let interval = "10s";
  for (const one of all) {
    if (!one) continue;
    interval = one.interval || interval;
    for (const sm of one.samples || []) {
      const sum = byStart.get(sm.start_time) || { start_time: sm.start_time, delivered: 0, rate_limited: 0, failed: 0, accepted: 0 };
      for (const k of ["delivered", "rate_limited", "failed", "accepted"]) sum[k] += int(sm[k]);
      byStart.set(sm.start_time, sum);
    }
  }
  return { interval, samples: [...byStart.values()].sort((a, b) => Date.parse(a.start_time) - Date.parse(b.start_time)) };
}

export async function render(ctx) {
  const { main, bot } = ctx;
  const title = bot ? `Overview: bot ${bot}` : ctx.session.bots.length > 1 ? "Overview: all bots" : "Overview";
  const body = h("div", { class: "overview", "aria-busy": "true" });
  fill(main, h("h1", {}, title), body);

  let timer = 0;
  let pending = false;
  let last = 0;
  let disposed = false;

  async function load() {
    last = Date.now();
    try {
      const [overview, throughput] = await Promise.all([
        api.overview(bot),
        throughputOf(ctx).catch(() => null),
      ]);
      if (disposed) return;
      const stats = overview.stats || {};
      refreshInPlace(body, () => fill(
        body,
        alertsPanel(stats),
        countCards(stats, bot),
        section("Throughput", throughput ? throughputChart(throughput, { width: chartWidth(body) })
          : h("p", { class: "muted" }, "No throughput figures for this view.")),
        h("div", { class: "columns" }, limiterPanel(stats, (stats.bots || []).length > 1), healthPanel(stats, bot), totalsPanel(stats)),
        botsPanel(stats),
        h("p", { class: "updated muted" }, "Updated ", timeEl(new Date(), { age: false })),
      ));
      body.setAttribute("aria-busy", "false");
    } catch (error) {
      if (!disposed && error.status !== 401) fill(body, errorBox(error, "Could not load the overview"));
    }
  }

  // At most one load a second however many events arrive; the last event always counts.
  function refreshSoon() {
    if (pending || disposed) return;
    pending = true;
    const wait = Math.max(0, THROTTLE_MS - (Date.now() - last));
    setTimeout(() => {
      pending = false;
      if (!disposed) load();
    }, wait);
  }

  await load();
  timer = setInterval(refreshSoon, POLL_MS);
  return {
    onJobEvent: refreshSoon,
    onGap: refreshSoon,
    dispose() {
      disposed = true;
      clearInterval(timer);
    },
  };
}
