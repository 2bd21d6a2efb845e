// Sandbox mode: what the Bot API simulator received, newest first.

import { api } from "./api.js";
import { fill, h } from "./dom.js";
import { errorBox, table, timeEl } from "./ui.js";

const LIMIT = 100;

export async function render(ctx) {
  const { main, params } = ctx;
  const chat = params.get("chat") || "";
  const heading = h("h1", {}, "Simulator");
  const input = h("input", { id: "sim-chat", name: "chat", type: "text", value: chat, autocomplete: "off", placeholder: "every chat" });
  const form = h("form", {
    class: "filter",
    on: { submit: (e) => { e.preventDefault(); ctx.navigate("/simulator", { bot: ctx.bot, chat: input.value.trim() }); } },
  }, h("label", { for: "sim-chat" }, "Chat id"), input, h("button", { type: "submit", class: "button" }, "Show"));
  fill(main, heading, form, h("p", { class: "loading" }, "Loading…"));
  let data;
  try {
    data = await api.simulator({ chat_id: chat, limit: LIMIT });
  } catch (error) {
    if (error.status !== 401) fill(main, heading, form, errorBox(error, "Could not read the simulator"));
    return {};
  }
  const messages = data.messages || [];
  fill(
    main,
    heading,
    h("p", { class: "muted" }, "Sandbox mode delivers to a Bot API simulator inside the gateway: these are the messages it received (at most ", String(LIMIT), ")."),
    form,
    table({
      caption: "Messages the simulator received, newest first",
      rows: messages,
      key: (m) => `${m.chat_id}:${m.message_id}`,
      empty: "The simulator has received nothing yet.",
      columns: [
        { label: "Message", cell: (m) => h("span", { class: "mono" }, String(m.message_id ?? "")) },
        { label: "Chat", cell: (m) => h("span", { class: "mono" }, String(m.chat_id ?? "")) },
        { label: "Received", cell: (m) => timeEl(m.date ? new Date(m.date * 1000).toISOString() : null) },
        { label: "Kind", cell: (m) => String(m.kind || "text") },
        { label: "Text", class: "col-text", cell: (m) => String(m.text ?? m.caption ?? "") },
      ],
    }),
  );
  return {
    // New deliveries show up as the jobs complete.
    onJobEvent: throttle(() => {
      // Not while someone types a filter.
      if (!form.contains(document.activeElement)) ctx.rerender();
    }, 1000),
  };
}

function throttle(fn, ms) {
  let timer = 0;
  return () => {
    if (timer) return;
    timer = setTimeout(() => { timer = 0; fn(); }, ms);
  };
}
