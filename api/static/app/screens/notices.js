// Notices: the borrower's own reminders, overdue warnings, default and debit notices, newest first, as they were
// texted (the API writes them in the app's language) with how their delivery went.
import { h } from "../core/dom.js";

function item({ t, fmt }, notice) {
  return h("li", { class: `pay-notice pay-notice-${notice.kind}`, "data-id": String(notice.id) },
    h("p", { class: "pay-notice-kind" }, t(`pay.notice.${notice.kind}`),
      h("span", { class: "hint" }, " · ", fmt.dateTime(notice.created_at))),
    h("p", { class: "pay-notice-text" }, notice.text),
    h("p", { class: "hint" }, t("pay.delivery", { status: t(`pay.delivery.${notice.delivery}`) })));
}

export default {
  route: "notices",
  needs: "session",
  tab: { label: "pay.nav_notices", order: 50 },
  async render(ctx) {
    const { t, api, locale, busy } = ctx;
    const fetchPage = (cursor) => api.get(`/v1/me/notices?${new URLSearchParams(
      { language: locale, limit: "20", ...(cursor ? { cursor } : {}) })}`);
    const first = await fetchPage(null);
    const list = h("ul", { class: "pay-notices", id: "notice-list" }, first.notices.map((n) => item(ctx, n)));
    const problem = h("div", { class: "problem" });
    let cursor = first.next_cursor;
    const more = h("button", { type: "button", class: "secondary", id: "notices-more", hidden: !cursor },
                   t("pay.notices_more"));
    more.addEventListener("click", () => busy(more, problem, async () => {
      const next = await fetchPage(cursor);
      list.append(...next.notices.map((n) => item(ctx, n)));
      cursor = next.next_cursor;
      more.hidden = !cursor;
    }));
    return h("section", { class: "pay" },
      h("h1", {}, t("pay.notices_title")),
      first.notices.length ? list : h("p", { class: "lead", id: "notices-none" }, t("pay.notices_none")),
      problem, more);
  },
};
