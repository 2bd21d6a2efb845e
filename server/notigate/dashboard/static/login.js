// The login form, the only thing shown without a session.

import { api } from "./api.js";
import { fill, h } from "./dom.js";

export function renderLogin(main, onSession, message = "") {
  const error = h("div", { class: "form-error", role: "alert", id: "login-error" }, message);
  const input = h("input", {
    id: "login-token", name: "token", type: "password", required: true, autocomplete: "current-password",
    "aria-describedby": "login-help login-error", spellcheck: "false",
  });
  const button = h("button", { type: "submit", class: "button button-primary" }, "Sign in");
  const form = h(
    "form",
    {
      class: "login",
      "aria-labelledby": "login-h",
      on: {
        submit: async (e) => {
          e.preventDefault();
          const token = input.value.trim();
          if (!token) {
            error.textContent = "Enter an API token.";
            input.focus();
            return;
          }
          button.disabled = true;
          error.textContent = "";
          try {
            const session = await api.login(token);
            input.value = "";
            onSession(session);
          } catch (err) {
            error.textContent = err.status === 401 ? "That token is not accepted." : `Sign-in failed: ${err.describe ? err.describe() : err}`;
            input.select();
            input.focus();
          } finally {
            button.disabled = false;
          }
        },
      },
    },
    h("h1", { id: "login-h" }, "Sign in to notigate"),
    h("label", { for: "login-token" }, "API token"),
    input,
    h("p", { class: "help", id: "login-help" }, "One of the gateway's NOTIGATE_API_TOKEN tokens, or a NOTIGATE_READONLY_TOKEN one to look without acting."),
    button,
    error,
  );
  fill(main, h("div", { class: "login-wrap" }, form));
  input.focus();
}
