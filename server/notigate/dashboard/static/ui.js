// Pieces every view uses: state badges, times, tables, pagers, messages, the dialog.

import { h, fill } from "./dom.js";
import { formatAge, formatTime, jobSummary, parseTime, stateName, truncate } from "./format.js";

/** A state as text and colour (the text alone carries the meaning). */
export function stateBadge(state) {
  const name = stateName(state);
  return h("span", { class: `badge state state-${name}`, dataset: { state: name } }, name);
}

/** A <time> in the browser's locale, with its age when `age` is set. */
export function timeEl(value, { age = true } = {}) {
  const d = parseTime(value);
  if (!d) return h("span", { class: "muted" }, "—");
  return h(
    "time",
    { datetime: d.toISOString(), title: d.toISOString() },
    formatTime(d),
    age ? h("span", { class: "age" }, ` (${formatAge(d)})`) : null,
  );
}

export function jobLink(id, bot) {
  if (!id) return h("span", { class: "muted" }, "—");
  return h("a", { href: routeHref(`/job/${encodeURIComponent(id)}`, { bot }), class: "mono" }, id);
}

/** "#/jobs/failed?bot=x": a route with its query, empty values left out. */
export function routeHref(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const text = q.toString();
  return `#${path}${text ? `?${text}` : ""}`;
}

/**
 * A table that scrolls sideways on narrow screens. columns: [{label, cell(row) -> node|text,
 * class?}]; rows get data-key from key(row).
 */
export function table({ caption, columns, rows, key, empty = "Nothing here.", rowClass }) {
  const head = h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.class ? `${c.class}-head` : undefined }, c.label)));
  const body = h("tbody");
  for (const row of rows) body.append(tableRow(columns, row, key, rowClass));
  const el = h(
    "div",
    { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption },
    h("table", {}, h("caption", { class: "visually-hidden" }, caption), h("thead", {}, head), body),
  );
  if (!rows.length) el.append(h("p", { class: "empty" }, empty));
  return el;
}

export function tableRow(columns, row, key, rowClass) {
  const tr = h("tr", { class: rowClass ? rowClass(row) : undefined });
  if (key) tr.dataset.key = key(row);
  columns.forEach((c, i) => {
    const content = c.cell(row);
    // The first column names the row for screen readers.
    // data-label heads the cell where a narrow screen stacks each row as a card.
    const attrs = { class: c.class, dataset: { label: c.label } };
    tr.append(i === 0 ? h("th", { scope: "row", ...attrs }, content) : h("td", attrs, content));
  });
  return tr;
}

/** The job table's columns; `actions(job)` adds the admin buttons when given. */
export function jobColumns({ actions, bot } = {}) {
  const cols = [
    { label: "Job", cell: (j) => jobLink(j.job_id, bot) },
    { label: "Chat", cell: (j) => h("span", { class: "mono" }, j.chat_id || j.request?.chat_id || "—") },
    { label: "Text", class: "col-text", cell: (j) => truncate(jobSummary(j), 70) || h("span", { class: "muted" }, "—") },
    { label: "State", cell: (j) => stateBadge(j.state) },
    { label: "Attempts", class: "num", cell: (j) => `${j.attempts ?? 0}/${j.max_attempts ?? 0}` },
    { label: "Last error", class: "col-error", cell: (j) => truncate(j.last_error, 60) || h("span", { class: "muted" }, "—") },
    { label: "Updated", cell: (j) => timeEl(j.update_time || j.create_time) },
  ];
  if (actions) cols.push({ label: "Actions", cell: (j) => actions(j) });
  return cols;
}

export function errorBox(error, what) {
  const text = error && error.describe ? error.describe() : String(error?.message || error);
  return h("div", { class: "notice notice-error", role: "alert" }, h("strong", {}, `${what}: `), text);
}

export function pager({ hasPrevious, nextToken, onFirst, onNext }) {
  const nav = h("nav", { class: "pager", "aria-label": "Pages" });
  nav.append(
    h("button", { type: "button", class: "button", disabled: !hasPrevious, on: { click: onFirst } }, "First page"),
    h("button", { type: "button", class: "button", disabled: !nextToken, on: { click: onNext } }, "Next page"),
  );
  return nav;
}

let toastTimer = 0;

/** A status message in the page's aria-live region. */
export function announce(text, kind = "info") {
  const el = document.getElementById("status");
  el.dataset.kind = kind;
  fill(el, text);
  el.classList.add("shown");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove("shown"), 6000);
}

/** Tab and Shift+Tab go round the dialog's own controls, never out to the browser. */
function trapFocus(dialog) {
  dialog.addEventListener("keydown", (e) => {
    if (e.key !== "Tab") return;
    const focusable = [...dialog.querySelectorAll("button, a[href], input, select, textarea, [tabindex]:not([tabindex='-1'])")]
      .filter((el) => !el.disabled && el.offsetParent !== null);
    if (!focusable.length) return;
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    if (e.shiftKey && document.activeElement === first) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && document.activeElement === last) {
      e.preventDefault();
      first.focus();
    }
  });
}

let trapped = false;

/**
 * The modal confirmation: resolves true on Confirm, false on Cancel or Escape. showModal()
 * makes the rest of the page inert, and Tab cycles inside, so focus stays in it until it
 * closes; then it returns to the control that opened it.
 */
export function confirmDialog({ title, body, confirmLabel = "Confirm" }) {
  const dialog = document.getElementById("confirm-dialog");
  if (!trapped) {
    trapFocus(dialog);
    trapped = true;
  }
  fill(document.getElementById("confirm-title"), title);
  fill(document.getElementById("confirm-body"), body);
  fill(document.getElementById("confirm-ok"), confirmLabel);
  const opener = document.activeElement;
  return new Promise((resolve) => {
    dialog.returnValue = "cancel";
    dialog.addEventListener(
      "close",
      () => {
        resolve(dialog.returnValue === "confirm");
        if (opener && opener.isConnected) opener.focus();
      },
      { once: true },
    );
    dialog.showModal();
    document.getElementById("confirm-cancel").focus();
  });
}

export function section(title, ...children) {
  const id = `h-${title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return h("section", { class: "panel", "aria-labelledby": id }, h("h2", { id }, title), children);
}

export function dl(pairs) {
  const el = h("dl", { class: "fields" });
  for (const [term, value, hook] of pairs) {
    el.append(h("div", { class: "field", dataset: hook ? { field: hook } : {} }, h("dt", {}, term), h("dd", {}, value)));
  }
  return el;
}

/** A selector that finds "the same" control in a fresh rendering of a view. */
function focusSelector(el) {
  if (el.id) return `#${CSS.escape(el.id)}`;
  const href = el.getAttribute("href");
  if (href) return `${el.tagName.toLowerCase()}[href="${CSS.escape(href)}"]`;
  return null;
}

/**
 * Re-render `box` with `render()` keeping what a person was on: the focused control and
 * the open <details> (a periodic refresh must not throw a keyboard user back to the top).
 */
export function refreshInPlace(box, render) {
  const active = document.activeElement;
  const selector = active && box.contains(active) ? focusSelector(active) : null;
  const open = new Set([...box.querySelectorAll("details[open][data-key]")].map((d) => d.dataset.key));
  render();
  for (const d of box.querySelectorAll("details[data-key]")) if (open.has(d.dataset.key)) d.open = true;
  if (selector) box.querySelector(selector)?.focus({ preventScroll: true });
}
