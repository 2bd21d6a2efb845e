// Jobs by state: tabs, a paged table (newest first), per-row and bulk actions, and
// live updates (a job entering the state shows at the top, one leaving is marked).

import { bulkAction, jobButtons } from "./actions.js";
import { api } from "./api.js";
import { fill, h } from "./dom.js";
import { STATES, stateName } from "./format.js";
import { errorBox, jobColumns, pager, routeHref, stateBadge, table, tableRow } from "./ui.js";

const PAGE_SIZE = 50;
// ListJobs' order: jobs still to handle in the order they will be, finished ones newest first.
const ORDER = {
  waiting: "next to send first",
  delayed: "soonest due first",
  active: "oldest lease first",
  completed: "newest first",
  failed: "newest first",
  cancelled: "newest first",
};
// Live events for jobs not yet shown are fetched in batches this small; a burst larger
// than that reloads the first page instead.
const LIVE_BATCH = 20;

function tabs(current, bot) {
  return h(
    "nav",
    { class: "tabs", "aria-label": "Job states" },
    h("ul", {}, STATES.map((st) =>
      h("li", {}, h("a", {
        href: routeHref(`/jobs/${st}`, { bot }),
        "aria-current": st === current ? "page" : undefined,
        class: "tab",
      }, st)))),
  );
}

function bulkForm(ctx, state, reload) {
  const action = state === "failed" ? "retry" : ["waiting", "delayed"].includes(state) ? "cancel" : null;
  if (!ctx.admin || !action) return null;
  const input = h("input", {
    id: "bulk-chat", name: "chat_id", type: "text", inputmode: "text", autocomplete: "off",
    placeholder: "every chat", value: ctx.params.get("chat") || "",
  });
  const label = action === "retry" ? `Retry all ${state}…` : `Cancel all ${state}…`;
  let busy = false;
  const form = h(
    "form",
    {
      class: "bulk",
      "aria-label": "Bulk action",
      on: {
        submit: async (e) => {
          e.preventDefault();
          // Not disabled while asking: focus goes back to this button when the dialog closes.
          if (busy) return;
          busy = true;
          try {
            const n = await bulkAction({ action, bot: ctx.bot, state, chatId: input.value.trim() });
            if (n) reload();
          } finally {
            busy = false;
          }
        },
      },
    },
    h("label", { for: "bulk-chat" }, "Chat id (optional)"),
    input,
    h("button", { type: "submit", class: `button ${action === "cancel" ? "button-danger" : "button-primary"}`, dataset: { action: `bulk-${action}` } }, label),
  );
  return form;
}

export async function render(ctx) {
  const { main, bot, params } = ctx;
  const state = STATES.includes(ctx.route[1]) ? ctx.route[1] : "waiting";
  const pageToken = params.get("page") || "";
  const tableBox = h("div", { class: "jobs-table", "aria-live": "off" });
  const pagerBox = h("div");
  const changeNote = h("p", { class: "visually-hidden", "aria-live": "polite" });
  let rows = new Map();
  let columns;
  let tbody = null;
  let disposed = false;

  const reload = () => ctx.rerender();

  function rowFor(job) {
    return tableRow(columns, job, (j) => j.job_id, (j) => `state-row-${stateName(j.state)}`);
  }

  function replaceRow(job) {
    const old = rows.get(job.job_id);
    const tr = rowFor(job);
    tr.dataset.jobId = job.job_id;
    if (stateName(job.state) !== state) {
      tr.classList.add("row-left");
      tr.dataset.left = stateName(job.state);
      tr.title = `Now ${stateName(job.state)}`;
    }
    if (old) old.replaceWith(tr);
    rows.set(job.job_id, tr);
    return tr;
  }

  function onChanged(job) {
    if (job) replaceRow(job);
  }

  columns = jobColumns({ bot, actions: ctx.admin ? (j) => jobButtons(ctx, j, onChanged) : null });

  fill(
    main,
    h("h1", {}, `Jobs: ${state}`, bot ? ` (bot ${bot})` : ""),
    tabs(state, bot),
    h("p", { class: "muted list-order" }, `Listed ${ORDER[state]}.`),
    bulkForm(ctx, state, reload),
    tableBox,
    pagerBox,
    changeNote,
  );

  let data;
  try {
    data = await api.jobs({ bot, state, page_size: PAGE_SIZE, page_token: pageToken });
  } catch (error) {
    if (error.status !== 401) fill(tableBox, errorBox(error, "Could not list the jobs"));
    return {};
  }
  const jobs = data.jobs || [];
  const wrap = table({
    caption: `${state} jobs, ${ORDER[state]}`,
    columns,
    rows: [],
    empty: `No ${state} jobs.`,
  });
  tbody = wrap.querySelector("tbody");
  for (const job of jobs) {
    const tr = rowFor(job);
    tr.dataset.jobId = job.job_id;
    rows.set(job.job_id, tr);
    tbody.append(tr);
  }
  if (jobs.length) wrap.querySelector(".empty")?.remove();
  fill(tableBox, wrap);
  fill(pagerBox, pager({
    hasPrevious: Boolean(pageToken),
    nextToken: data.next_page_token,
    onFirst: () => ctx.navigate(`/jobs/${state}`, { bot }),
    onNext: () => ctx.navigate(`/jobs/${state}`, { bot, page: data.next_page_token }),
  }));

  // Jobs that entered this state while the page is shown, fetched a few at a time.
  const incoming = new Set();
  let flushing = false;

  async function flush() {
    if (flushing || disposed) return;
    flushing = true;
    try {
      while (incoming.size && !disposed) {
        if (incoming.size > LIVE_BATCH) {
          incoming.clear();
          reload();
          return;
        }
        const ids = [...incoming];
        incoming.clear();
        const found = await Promise.all(ids.map((id) => api.job(id).then((r) => r.job).catch(() => null)));
        for (const job of found) {
          if (!job || disposed || (bot && job.bot && job.bot !== bot)) continue;
          const known = rows.has(job.job_id);
          const tr = replaceRow(job);
          if (!known && stateName(job.state) === state) {
            tbody.prepend(tr);
            tableBox.querySelector(".empty")?.remove();
            tr.classList.add("row-new");
          }
        }
      }
    } finally {
      flushing = false;
    }
  }

  return {
    onJobEvent(event) {
      if (bot && event.bot && event.bot !== bot) return;
      const id = event.job_id;
      const now = stateName(event.state);
      const shown = rows.get(id);
      if (shown) {
        if (now !== state) {
          shown.classList.add("row-left");
          shown.dataset.left = now;
          const badge = shown.querySelector("[data-state]");
          if (badge) badge.replaceWith(stateBadge(event.state));
          changeNote.textContent = `Job ${id} is now ${now}.`;
        } else {
          incoming.add(id);
        }
      } else if (now === state && !pageToken) {
        incoming.add(id);
      }
      flush();
    },
    onGap: reload,
    dispose() {
      disposed = true;
    },
  };
}
