// The dashboard's entry point: the session, the hash router, the header and the live
// connection. Each view module renders into a container of its own, so a slow answer
// for a view the user already left never paints over the current one.

import { api, setCsrfToken, setUnauthorizedHandler } from "./api.js";
import { fill, h } from "./dom.js";
import { Live } from "./live.js";
import { renderLogin } from "./login.js";
import { announce, routeHref } from "./ui.js";
import * as jobView from "./job.js";
import * as jobsView from "./jobs.js";
import * as overviewView from "./overview.js";
import * as searchView from "./search.js";
import * as simulatorView from "./simulator.js";
import * as suppressedView from "./suppressed.js";

const main = document.getElementById("main");
const LIVE_TEXT = { connected: "live", connecting: "connecting…", reconnecting: "reconnecting…", offline: "offline" };

let session = null;
let current = null; // {handle, container, key}
let generation = 0;

const live = new Live({
  onJob: (event) => current?.handle?.onJobEvent?.(event),
  onGap: () => {
    if (current?.handle?.onGap) current.handle.onGap();
    else rerender();
  },
  onClosed: () => {
    // A stream refused for want of a session shows the login, not endless retries.
    api.session().catch((error) => {
      if (error.status === 401 && session) showLogin("Your session ended: sign in again.");
    });
  },
  onState: (state) => {
    const el = document.getElementById("live");
    el.dataset.live = state;
    fill(document.getElementById("live-text"), LIVE_TEXT[state] || state);
  },
});

function parseHash() {
  const raw = location.hash.startsWith("#/") ? location.hash.slice(1) : "/";
  const [path, query = ""] = raw.split("?");
  const route = path.split("/").filter(Boolean);
  return { route, params: new URLSearchParams(query), path };
}

function currentBot(params) {
  const bot = params.get("bot") || "";
  return session && session.bots.includes(bot) ? bot : "";
}

export function navigate(path, params = {}) {
  const target = routeHref(path, params);
  if (location.hash === target) rerender();
  else location.hash = target;
}

function viewFor(route) {
  switch (route[0] || "") {
    case "":
      return overviewView;
    case "jobs":
      return jobsView;
    case "job":
      return route.length > 1 ? jobView : null;
    case "search":
      return searchView;
    case "suppressed":
      return suppressedView;
    case "simulator":
      return session.sandbox ? simulatorView : null;
    default:
      return null;
  }
}

function renderNav(route, bot) {
  const items = [
    ["/", "Overview", (route[0] || "") === ""],
    ["/jobs/waiting", "Jobs", route[0] === "jobs" || route[0] === "job"],
    ["/search", "Search", route[0] === "search"],
    ["/suppressed", "Suppressed chats", route[0] === "suppressed"],
  ];
  if (session.sandbox) items.push(["/simulator", "Simulator", route[0] === "simulator"]);
  fill(
    document.getElementById("nav-list"),
    items.map(([path, label, active]) =>
      h("li", {}, h("a", { href: routeHref(path, { bot }), "aria-current": active ? "page" : undefined }, label))),
  );
}

function renderHeader(bot) {
  document.getElementById("session-tools").hidden = false;
  document.getElementById("main-nav").hidden = false;
  const role = document.getElementById("role-badge");
  fill(role, session.role === "admin" ? "admin" : "read-only");
  role.dataset.role = session.role;
  document.getElementById("sandbox-badge").hidden = !session.sandbox;
  // Without API tokens nobody signs in, so nobody signs out.
  document.getElementById("logout").hidden = !session.auth;
  const wrap = document.getElementById("bot-picker-wrap");
  const picker = document.getElementById("bot-picker");
  wrap.hidden = session.bots.length < 2;
  if (!wrap.hidden) {
    fill(picker,
      h("option", { value: "" }, "All bots"),
      session.bots.map((b) => h("option", { value: b }, b)));
    picker.value = bot;
  }
}

function hideHeader() {
  document.getElementById("session-tools").hidden = true;
  document.getElementById("main-nav").hidden = true;
}

async function render({ focus }) {
  if (!session) return;
  const gen = ++generation;
  const { route, params, path } = parseHash();
  const bot = currentBot(params);
  renderHeader(bot);
  renderNav(route, bot);
  live.open(bot);
  current?.handle?.dispose?.();
  const container = h("div", { class: "view" });
  fill(main, container);
  const view = viewFor(route);
  const ctx = {
    main: container,
    session,
    bot,
    params,
    route,
    path,
    admin: session.role === "admin",
    navigate,
    rerender: () => { if (gen === generation) rerender(); },
  };
  current = { handle: null, container };
  if (focus) main.focus({ preventScroll: false });
  if (!view) {
    document.title = "Not found · notigate";
    fill(container, h("h1", {}, "Not found"), h("p", {}, "No such page. ", h("a", { href: "#/" }, "Back to the overview.")));
    return;
  }
  const handle = await view.render(ctx);
  if (gen !== generation) {
    handle?.dispose?.();
    return;
  }
  current.handle = handle || {};
  const heading = container.querySelector("h1");
  document.title = `${heading ? heading.textContent : "notigate"} · notigate`;
}

function rerender() {
  render({ focus: false });
}

function start(newSession) {
  session = { bots: [], ...newSession };
  setCsrfToken(session.csrf_token);
  render({ focus: false });
}

function showLogin(message) {
  session = null;
  generation += 1;
  current?.handle?.dispose?.();
  current = null;
  live.close();
  setCsrfToken("");
  hideHeader();
  document.title = "Sign in · notigate";
  renderLogin(main, start, message);
}

setUnauthorizedHandler(() => {
  if (session) showLogin("Your session ended: sign in again.");
});

window.addEventListener("hashchange", () => {
  if (session) render({ focus: true });
});

document.getElementById("skip-link").addEventListener("click", (e) => {
  // The link's own #main would replace the route in the address bar.
  e.preventDefault();
  main.focus();
});

document.getElementById("search-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const q = document.getElementById("search-input").value.trim();
  navigate("/search", { q, bot: currentBot(parseHash().params) });
});

document.getElementById("bot-picker").addEventListener("change", (e) => {
  const { path, params } = parseHash();
  const next = Object.fromEntries(params);
  delete next.page;
  next.bot = e.target.value;
  navigate(path, next);
});

document.getElementById("logout").addEventListener("click", async () => {
  try {
    await api.logout();
  } catch (error) {
    announce(`Sign-out failed: ${error.describe ? error.describe() : error}`, "error");
    return;
  }
  showLogin("Signed out.");
});

async function boot() {
  try {
    start(await api.session());
  } catch (error) {
    if (error.status === 401) showLogin("");
    else fill(main, h("div", { class: "notice notice-error", role: "alert" }, `The gateway did not answer: ${error.message}`));
  }
}

boot();
