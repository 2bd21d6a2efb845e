// The one way the page talks to the gateway: JSON over same-origin fetch, the CSRF
// header on every POST, and the contract's error body turned into an ApiError.

let csrfToken = "";
let onUnauthorized = () => {};

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "";
    this.reason = error.reason || "";
    this.violations = error.violations || [];
  }

  /** One line for a person: the message and what each violated field says. */
  describe() {
    const fields = this.violations.map((v) => `${v.field}: ${v.description}`);
    return [this.message, ...fields].join(" — ");
  }
}

export function setCsrfToken(token) {
  csrfToken = token || "";
}

/** Called when an answer says the session is gone (401), to show the login again. */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

async function request(method, path, body, { quiet401 = false } = {}) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  let data = null;
  const type = response.headers.get("Content-Type") || "";
  if (type.includes("json")) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401 && !quiet401) onUnauthorized(error);
    throw error;
  }
  return data;
}

/** "/api/jobs" + {state: "failed", bot: ""} -> "/api/jobs?state=failed" (empty ones left out). */
export function withQuery(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const text = q.toString();
  return text ? `${path}?${text}` : path;
}

export const api = {
  session: () => request("GET", "/api/session", undefined, { quiet401: true }),
  login: (token) => request("POST", "/api/login", { token }, { quiet401: true }),
  logout: () => request("POST", "/api/logout", {}),
  overview: (bot) => request("GET", withQuery("/api/overview", { bot })),
  throughput: (bot) => request("GET", withQuery("/api/throughput", { bot })),
  jobs: (params) => request("GET", withQuery("/api/jobs", params)),
  job: (id) => request("GET", `/api/jobs/${encodeURIComponent(id)}`),
  search: (params) => request("GET", withQuery("/api/search", params)),
  suppressed: (params) => request("GET", withQuery("/api/suppressed", params)),
  simulator: (params) => request("GET", withQuery("/api/simulator", params)),
  retry: (id) => request("POST", `/api/jobs/${encodeURIComponent(id)}/retry`, {}),
  cancel: (id) => request("POST", `/api/jobs/${encodeURIComponent(id)}/cancel`, {}),
  bulk: (body) => request("POST", "/api/bulk", body),
  unsuppress: (bot, chatId) =>
    request("POST", "/api/suppressed/unsuppress", { bot, chat_id: chatId }),
};
