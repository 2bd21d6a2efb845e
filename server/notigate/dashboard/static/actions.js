// The admin actions on single jobs and on filters (bulk), each confirmed where it
// cannot be undone, and reported in the status region.

import { api } from "./api.js";
import { h } from "./dom.js";
import { formatNumber, int, stateName } from "./format.js";
import { announce, confirmDialog } from "./ui.js";

export function canRetry(job) {
  return stateName(job.state) === "failed";
}

export function canCancel(job) {
  return ["waiting", "delayed"].includes(stateName(job.state));
}

/** Retry a failed job; resolves to the job as it is now, or null when refused. */
export async function retryJob(job) {
  try {
    const reply = await api.retry(job.job_id);
    announce(`Job ${job.job_id} queued again.`);
    return reply?.job || null;
  } catch (error) {
    announce(`Retry of ${job.job_id} refused: ${error.describe ? error.describe() : error}`, "error");
    return null;
  }
}

export async function cancelJob(job) {
  const ok = await confirmDialog({
    title: "Cancel this job?",
    body: h("p", {}, `Job ${job.job_id} to chat ${job.chat_id || job.request?.chat_id || "?"} will not be sent.`),
    confirmLabel: "Cancel job",
  });
  if (!ok) return null;
  try {
    const reply = await api.cancel(job.job_id);
    announce(`Job ${job.job_id} cancelled.`);
    return reply?.job || null;
  } catch (error) {
    announce(`Cancel of ${job.job_id} refused: ${error.describe ? error.describe() : error}`, "error");
    return null;
  }
}

/** The row's buttons for an admin session, none for a read-only one. */
export function jobButtons(ctx, job, onChanged) {
  if (!ctx.admin) return h("span", { class: "muted" }, "—");
  const box = h("span", { class: "row-actions" });
  if (canRetry(job)) {
    box.append(h("button", {
      type: "button", class: "button button-small", dataset: { action: "retry", job: job.job_id },
      "aria-label": `Retry job ${job.job_id}`,
      on: { click: async (e) => { e.currentTarget.disabled = true; onChanged(await retryJob(job)); } },
    }, "Retry"));
  }
  if (canCancel(job)) {
    box.append(h("button", {
      type: "button", class: "button button-small button-danger", dataset: { action: "cancel", job: job.job_id },
      "aria-label": `Cancel job ${job.job_id}`,
      on: { click: async () => onChanged(await cancelJob(job)) },
    }, "Cancel"));
  }
  if (!box.childNodes.length) return h("span", { class: "muted" }, "—");
  return box;
}

/**
 * Bulk retry/cancel of a filter: asks the gateway how many jobs match (validate_only),
 * shows that with sample ids, and only on Confirm acts. Resolves to the count acted on.
 */
export async function bulkAction({ action, bot, state, chatId }) {
  const body = { action, bot: bot || "", state: state || "", chat_id: chatId || "" };
  let preview;
  try {
    preview = await api.bulk({ ...body, validate_only: true });
  } catch (error) {
    announce(`Refused: ${error.describe ? error.describe() : error}`, "error");
    return 0;
  }
  const count = int(preview.count);
  const what = `${state ? `${state} ` : ""}job${count === 1 ? "" : "s"}${chatId ? ` of chat ${chatId}` : ""}`;
  const verb = action === "retry" ? "Retry" : "Cancel";
  if (count === 0) {
    announce(`No ${state || ""} jobs${chatId ? ` of chat ${chatId}` : ""} to ${action}.`);
    return 0;
  }
  const samples = preview.sample_job_ids || [];
  const ok = await confirmDialog({
    title: `${verb} ${formatNumber(count)} ${what}?`,
    body: [
      h("p", {}, action === "retry"
        ? "They go back to the queue and are sent again."
        : "They will not be sent."),
      samples.length ? h("p", {}, `Among them (${samples.length} shown):`) : null,
      samples.length ? h("ul", { class: "sample-ids mono", dataset: { samples: samples.length } },
        samples.map((id) => h("li", {}, id))) : null,
    ],
    confirmLabel: `${verb} ${formatNumber(count)}`,
  });
  if (!ok) {
    announce("Nothing changed.");
    return 0;
  }
  try {
    const done = await api.bulk({ ...body, validate_only: false });
    const n = int(done.count);
    announce(`${action === "retry" ? "Retried" : "Cancelled"} ${formatNumber(n)} job${n === 1 ? "" : "s"}.`);
    return n;
  } catch (error) {
    announce(`Refused: ${error.describe ? error.describe() : error}`, "error");
    return 0;
  }
}
