// Suppressed chats (blocked the bot, deleted, ...): who, why, since when, Unsuppress.

import { api } from "./api.js";
import { fill, h } from "./dom.js";
import { announce, confirmDialog, errorBox, jobLink, pager, table, timeEl } from "./ui.js";

export async function render(ctx) {
  const { main, bot, params } = ctx;
  const pageToken = params.get("page") || "";
  const heading = h("h1", {}, "Suppressed chats", bot ? ` (bot ${bot})` : "");
  fill(main, heading, h("p", { class: "loading" }, "Loading…"));
  let data;
  try {
    data = await api.suppressed({ bot, page_token: pageToken });
  } catch (error) {
    if (error.status !== 401) fill(main, heading, errorBox(error, "Could not list the suppressed chats"));
    return {};
  }

  async function unsuppress(chat, button) {
    const ok = await confirmDialog({
      title: `Unsuppress chat ${chat.chat_id}?`,
      body: h("p", {}, "Messages to this chat will be sent again. It was suppressed because: ", h("strong", {}, chat.reason || "unknown"), "."),
      confirmLabel: "Unsuppress",
    });
    if (!ok) return;
    button.disabled = true;
    try {
      await api.unsuppress(chat.bot || bot, chat.chat_id);
      announce(`Chat ${chat.chat_id} is no longer suppressed.`);
      ctx.rerender();
    } catch (error) {
      button.disabled = false;
      announce(`Refused: ${error.describe ? error.describe() : error}`, "error");
    }
  }

  const columns = [
    { label: "Chat", cell: (c) => h("span", { class: "mono" }, c.chat_id) },
    { label: "Reason", cell: (c) => c.reason || "—" },
    { label: "Since", cell: (c) => timeEl(c.suppress_time) },
    { label: "Job", cell: (c) => jobLink(c.job_id, bot) },
  ];
  if (ctx.admin) {
    columns.push({
      label: "Actions",
      cell: (c) => {
        const b = h("button", { type: "button", class: "button button-small", dataset: { action: "unsuppress", chat: c.chat_id },
          "aria-label": `Unsuppress chat ${c.chat_id}` }, "Unsuppress");
        b.addEventListener("click", () => unsuppress(c, b));
        return b;
      },
    });
  }
  fill(
    main,
    heading,
    h("p", { class: "muted" }, "Telegram refused these chats for good (the bot was blocked, the chat is gone): their messages fail at once instead of being sent."),
    table({ caption: "Suppressed chats", columns, rows: data.chats || [], key: (c) => c.chat_id, empty: "No chat is suppressed." }),
    pager({
      hasPrevious: Boolean(pageToken),
      nextToken: data.next_page_token,
      onFirst: () => ctx.navigate("/suppressed", { bot }),
      onNext: () => ctx.navigate("/suppressed", { bot, page: data.next_page_token }),
    }),
  );
  return { onGap: () => ctx.rerender() };
}
