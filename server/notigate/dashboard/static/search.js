// Search results: the job with that id, the job of that idempotency key, then the
// chat's jobs or the jobs whose text contains the query, with "More results".

import { jobButtons } from "./actions.js";
import { api } from "./api.js";
import { fill, h } from "./dom.js";
import { formatNumber, int } from "./format.js";
import { errorBox, jobColumns, routeHref, section, table, tableRow } from "./ui.js";

export async function render(ctx) {
  const { main, bot } = ctx;
  const q = (ctx.params.get("q") || "").trim();
  const asked = ctx.params.get("kind") === "text" ? "text" : "";
  const input = document.getElementById("search-input");
  if (input && input.value !== q) input.value = q;
  const heading = h("h1", {}, q ? `Search: “${q}”` : "Search");
  if (!q) {
    fill(main, heading, h("p", {}, "Type a job id, an idempotency key, a chat id (123456 or @name) or some text into “Search jobs” and press Enter."));
    return {};
  }
  fill(main, heading, h("p", { class: "loading" }, "Searching…"));
  let data;
  try {
    data = await api.search({ bot, q, kind: asked });
  } catch (error) {
    if (error.status !== 401) fill(main, heading, errorBox(error, "Search failed"));
    return {};
  }
  let columns;
  const rerow = (job) => {
    if (!job) return;
    for (const tr of main.querySelectorAll(`tr[data-key="${CSS.escape(job.job_id)}"]`)) tr.replaceWith(tableRow(columns, job, (j) => j.job_id));
  };
  columns = jobColumns({ bot, actions: ctx.admin ? (j) => jobButtons(ctx, j, rerow) : null });

  const exact = [];
  if (data.job) exact.push(section("Job with this id", table({ caption: "Job with this id", columns, rows: [data.job], key: (j) => j.job_id })));
  if (data.by_key) exact.push(section("Job with this idempotency key", table({ caption: "Job with this idempotency key", columns, rows: [data.by_key], key: (j) => j.job_id })));

  const kind = data.kind === "chat" ? "chat" : "text";
  const title = kind === "chat" ? `Jobs of chat ${q}` : `Jobs whose text contains “${q}”`;
  const results = table({ caption: title, columns, rows: [], key: (j) => j.job_id, empty: "No job matches yet." });
  const tbody = results.querySelector("tbody");
  const examinedNote = h("p", { class: "muted", "aria-live": "polite", dataset: { examined: "" } });
  const more = h("button", { type: "button", class: "button" }, "More results");
  let examined = 0;
  let found = 0;

  function add(page) {
    const jobs = page?.jobs || [];
    for (const job of jobs) tbody.append(tableRow(columns, job, (j) => j.job_id));
    found += jobs.length;
    examined += int(page?.examined_jobs);
    if (found) results.querySelector(".empty")?.remove();
    const token = page?.next_page_token || "";
    more.hidden = !token;
    more.dataset.token = token;
    examinedNote.dataset.examined = String(examined);
    examinedNote.textContent = kind === "text"
      ? `${formatNumber(found)} found among ${formatNumber(examined)} jobs examined${token ? "; more remain to examine." : "."}`
      : `${formatNumber(found)} found${token ? "; more remain." : "."}`;
  }

  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const page = await api.search({ bot, q, kind: asked, page_token: more.dataset.token });
      add(page.results);
    } catch (error) {
      if (error.status !== 401) more.after(errorBox(error, "Could not load more"));
    } finally {
      more.disabled = false;
    }
  });

  add(data.results);
  // The query named a job: the (costly) scan of texts was not made unless asked for.
  const skipped = data.text_skipped
    ? h("p", { class: "notice notice-info", dataset: { textSkipped: "" } },
      "The texts were not searched, since the query names a job. ",
      h("a", { href: routeHref("/search", { q, kind: "text", bot }) }, "Search the texts too"), ".")
    : null;
  if (skipped) {
    results.hidden = true;
    examinedNote.hidden = true;
  }
  fill(
    main,
    heading,
    exact,
    !data.job && !data.by_key ? h("p", { class: "muted" }, "No job has this id or idempotency key.") : null,
    h("section", { class: "panel", "aria-labelledby": "results-h", dataset: { results: kind } },
      h("h2", { id: "results-h" }, title), skipped, results, examinedNote, more),
  );
  return {};
}
