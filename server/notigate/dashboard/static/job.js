// One job: every field, its request, its timeline of events, Retry / Cancel.

import { canCancel, canRetry, cancelJob, retryJob } from "./actions.js";
import { api } from "./api.js";
import { fill, h } from "./dom.js";
import { durationSeconds, enumName, formatDuration } from "./format.js";
import { dl, errorBox, jobLink, section, stateBadge, table, timeEl } from "./ui.js";

const dash = () => h("span", { class: "muted" }, "—");
const text = (v) => (v === undefined || v === null || v === "" ? dash() : String(v));
const mono = (v) => (v === undefined || v === null || v === "" ? dash() : h("span", { class: "mono" }, String(v)));
const yesNo = (v) => (v ? "yes" : "no");

function parseMode(value) {
  const name = enumName(value, "PARSE_MODE_");
  return !name || name === "unspecified" ? "none (plain text)" : name.replace("_", " ");
}

function mediaText(media) {
  if (!media) return dash();
  const source = media.url ? `url ${media.url}` : media.file_id ? `file_id ${media.file_id}` : media.upload_id ? `upload ${media.upload_id}` : "";
  const flags = [media.filename && `named ${media.filename}`, media.has_spoiler && "spoiler", media.show_caption_above_media && "caption above"].filter(Boolean);
  return h("span", {}, h("strong", {}, enumName(media.kind, "MEDIA_KIND_") || "media"), " ", h("span", { class: "mono" }, source),
    flags.length ? ` (${flags.join(", ")})` : "");
}

function buttonsOf(markup) {
  const rows = markup?.rows || [];
  if (!rows.length) return dash();
  return h("ul", { class: "keyboard" }, rows.map((row) =>
    h("li", {}, (row.buttons || []).map((b) => {
      const action = b.url ? `url: ${b.url}` : b.callback_data ? `callback: ${b.callback_data}`
        : b.copy_text ? "copy text" : b.switch_inline_query !== undefined ? "inline query" : "inline query here";
      return h("span", { class: "kbd-button", title: action }, b.text, h("span", { class: "muted" }, ` (${action})`));
    }))));
}

function requestPanel(req) {
  if (!req) return section("Request", h("p", { class: "muted" }, "The job holds no request."));
  const items = req.media_group?.items || [];
  return section(
    "Request",
    h("div", { class: "message-text", dataset: { field: "text" } }, req.text || h("span", { class: "muted" }, "(no text)")),
    dl([
      ["Chat", mono(req.chat_id)],
      ["Parse mode", parseMode(req.parse_mode)],
      ["Priority", text(req.priority ?? 0)],
      ["Idempotency key", mono(req.idempotency_key)],
      ["Media", mediaText(req.media)],
      ["Album", items.length ? h("ol", {}, items.map((i) => h("li", {}, mediaText(i.media), i.caption ? ` — ${i.caption}` : ""))) : dash()],
      ["Buttons", buttonsOf(req.reply_markup)],
      ["Send at", timeEl(req.send_at)],
      ["Delay", req.delay ? formatDuration(durationSeconds(req.delay)) : dash()],
      ["Thread", text(req.message_thread_id && req.message_thread_id !== "0" ? req.message_thread_id : "")],
      ["Silent", yesNo(req.disable_notification)],
      ["Protected content", yesNo(req.protect_content)],
      ["Link preview", req.link_preview ? (req.link_preview.is_disabled ? "disabled" : text(req.link_preview.url || "default")) : "default"],
      ["Paid broadcast", yesNo(req.allow_paid_broadcast)],
      ["Ignores suppression", yesNo(req.ignore_suppression)],
      ["Max attempts asked", text(req.max_attempts || "default")],
    ]),
  );
}

function messageIds(job) {
  const ids = (job.telegram_message_ids || []).filter((i) => i && i !== "0");
  if (ids.length) return mono(ids.join(", "));
  return job.telegram_message_id && job.telegram_message_id !== "0" ? mono(job.telegram_message_id) : dash();
}

function timeline(events, trimmed) {
  return section(
    "Timeline",
    trimmed ? h("p", { class: "notice notice-warn", dataset: { trimmed: "" } }, "The event stream no longer holds this job's earliest events: the timeline starts later.") : null,
    table({
      caption: "The job's state changes, oldest first",
      key: (e) => e.cursor,
      rows: events,
      empty: "No event recorded.",
      columns: [
        { label: "State", cell: (e) => stateBadge(e.state) },
        { label: "Time", cell: (e) => timeEl(e.time) },
        { label: "Attempts", class: "num", cell: (e) => String(e.attempts ?? 0) },
        { label: "Error", class: "col-error", cell: (e) => text(e.error) },
        { label: "Message id", cell: (e) => messageIds(e) },
      ],
    }),
  );
}

export async function render(ctx) {
  const { main } = ctx;
  const id = decodeURIComponent(ctx.route.slice(1).join("/"));
  fill(main, h("h1", {}, "Job ", h("span", { class: "mono" }, id)), h("p", { class: "loading" }, "Loading…"));
  let data;
  try {
    data = await api.job(id);
  } catch (error) {
    if (error.status !== 401) fill(main, h("h1", {}, "Job ", h("span", { class: "mono" }, id)), errorBox(error, "Could not load the job"));
    return {};
  }
  const job = data.job || {};
  const actions = h("div", { class: "actions" });
  if (ctx.admin) {
    const after = (changed) => { if (changed) ctx.rerender(); };
    if (canRetry(job)) {
      actions.append(h("button", { type: "button", class: "button button-primary", dataset: { action: "retry", job: job.job_id },
        on: { click: async (e) => { e.currentTarget.disabled = true; after(await retryJob(job)); } } }, "Retry"));
    }
    if (canCancel(job)) {
      actions.append(h("button", { type: "button", class: "button button-danger", dataset: { action: "cancel", job: job.job_id },
        on: { click: async () => after(await cancelJob(job)) } }, "Cancel"));
    }
  }
  fill(
    main,
    h("h1", {}, "Job ", h("span", { class: "mono" }, job.job_id || id), " ", stateBadge(job.state)),
    actions.childNodes.length ? actions : null,
    h("div", { class: "columns columns-wide" }, section("Job", dl([
      ["State", stateBadge(job.state), "state"],
      ["Kind", text(enumName(job.kind, "JOB_KIND_"))],
      ["Bot", text(job.bot)],
      ["Chat", mono(job.chat_id)],
      ["Attempts", `${job.attempts ?? 0} of ${job.max_attempts ?? 0}`, "attempts"],
      ["Last error", text(job.last_error), "last_error"],
      ["Telegram message id", messageIds(job), "telegram_message_id"],
      ["Stalls", text(job.stalls ?? 0)],
      ["Created", timeEl(job.create_time)],
      ["Updated", timeEl(job.update_time)],
      ["Scheduled for", timeEl(job.scheduled_time)],
      ["Delivered", timeEl(job.deliver_time)],
      ["Target job", job.target_job_id ? jobLink(job.target_job_id, ctx.bot) : dash()],
    ])),
    requestPanel(job.request)),
    timeline(data.events || [], data.events_trimmed),
  );
  return {
    onJobEvent(event) {
      if (event.job_id === job.job_id) ctx.rerender();
    },
    onGap: () => ctx.rerender(),
  };
}
