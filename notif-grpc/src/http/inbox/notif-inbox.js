// notif-inbox.js — a dependency-free inbox for web apps, served by notifd.
//
//   import { NotifInbox } from "/notif-inbox.js";
//   const inbox = new NotifInbox({ getToken: async () => myAccessToken });
//   inbox.addEventListener("change", () => render(inbox.notifications, inbox.unreadCount));
//   await inbox.start();
//
// or, as a custom element:
//
//   <notif-inbox></notif-inbox>
//   document.querySelector("notif-inbox").getToken = async () => myAccessToken;
//
// The inbox lists the feed, then follows it live over the event stream of
// GET /me/notifications/changes (Server-Sent Events read with fetch, so the token travels in
// the Authorization header, never in a URL), resuming after the last change it applied
// (kept in sessionStorage, so a reload resumes too).

const RETRY_MS = 1000;

export class NotifInbox extends EventTarget {
  /**
   * @param {{ getToken: () => Promise<string>, baseUrl?: string, storageKey?: string }} options
   */
  constructor({ getToken, baseUrl = "", storageKey = "notif-inbox-cursor" }) {
    super();
    this.getToken = getToken;
    this.baseUrl = baseUrl;
    this.storageKey = storageKey;
    /** @type {Map<string, object>} the active notifications by id, newest first */
    this.byId = new Map();
    this.unreadCount = 0;
    this.cursor = Number(sessionStorage.getItem(storageKey) || 0);
    this.stopped = false;
    this.abort = null;
  }

  /** The active notifications, newest first. */
  get notifications() {
    return [...this.byId.values()].sort((a, b) => (a.id < b.id ? 1 : -1));
  }

  async request(method, path, body) {
    const token = await this.getToken();
    const response = await fetch(this.baseUrl + path, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body ? { "content-type": "application/json" } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!response.ok && response.status !== 204) {
      throw new Error(`${method} ${path}: ${response.status}`);
    }
    return response.status === 204 ? null : response.json();
  }

  /** Lists the feed, then follows it until stop(). */
  async start() {
    if (this.cursor === 0) {
      // Follow from the feed's end as it is before the listing: whatever changes between the
      // two is applied again, never missed.
      const latest = await this.request("GET", "/me/notifications/changes?cursor=latest");
      this.cursor = latest.cursor;
    }
    const page = await this.request("GET", "/me/notifications");
    this.byId = new Map(page.value.map((n) => [n.id, n]));
    this.unreadCount = page.unreadCount ?? this.countUnread();
    this.changed();
    this.follow();
  }

  stop() {
    this.stopped = true;
    this.abort?.abort();
  }

  markRead(id) {
    return this.request("PATCH", `/me/notifications/${id}`, { readState: "read" });
  }

  dismiss(id) {
    return this.request("PATCH", `/me/notifications/${id}`, { userActionState: "dismissed" });
  }

  remove(id) {
    return this.request("DELETE", `/me/notifications/${id}`);
  }

  countUnread() {
    return [...this.byId.values()].filter((n) => n.readState === "unread").length;
  }

  apply(notification) {
    if (notification.status === "active") {
      this.byId.set(notification.id, notification);
    } else {
      this.byId.delete(notification.id);
    }
    this.unreadCount = this.countUnread();
    this.cursor = notification.changeSeq ?? this.cursor;
    sessionStorage.setItem(this.storageKey, String(this.cursor));
    this.changed();
  }

  changed() {
    this.dispatchEvent(new Event("change"));
  }

  async follow() {
    while (!this.stopped) {
      try {
        await this.readStream();
      } catch (error) {
        if (this.stopped) return;
      }
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }

  async readStream() {
    this.abort = new AbortController();
    const token = await this.getToken();
    const headers = { authorization: `Bearer ${token}`, accept: "text/event-stream" };
    if (this.cursor > 0) headers["last-event-id"] = String(this.cursor);
    const response = await fetch(this.baseUrl + "/me/notifications/changes", {
      headers,
      signal: this.abort.signal,
    });
    if (!response.ok) throw new Error(`event stream: ${response.status}`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block
          .split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).trimStart())
          .join("\n");
        if (data && /^event:\s*change$/m.test(block)) this.apply(JSON.parse(data));
      }
    }
  }
}

/** `<notif-inbox>`: the feed, its unread count, and a button per action. */
export class NotifInboxElement extends HTMLElement {
  set getToken(getToken) {
    this.inbox?.stop();
    this.inbox = new NotifInbox({ getToken, baseUrl: this.getAttribute("base-url") ?? "" });
    this.inbox.addEventListener("change", () => this.render());
    this.inbox.start().catch((error) => this.showError(error));
  }

  disconnectedCallback() {
    this.inbox?.stop();
  }

  showError(error) {
    this.textContent = `notif: ${error.message}`;
  }

  render() {
    const inbox = this.inbox;
    const root = document.createElement("section");
    root.className = "notif-inbox";
    const heading = document.createElement("h2");
    heading.innerHTML = `Notifications <span class="unread-count"></span>`;
    heading.querySelector(".unread-count").textContent = String(inbox.unreadCount);
    root.append(heading);
    const list = document.createElement("ul");
    for (const notification of inbox.notifications) {
      const item = document.createElement("li");
      item.className = `notification ${notification.readState}`;
      item.dataset.id = notification.id;
      item.dataset.key = notification.appNotificationId;
      const visual = notification.payload?.visualContent;
      const text = document.createElement("span");
      text.className = "text";
      const title = document.createElement("strong");
      title.className = "title";
      title.textContent = visual?.title ?? notification.appNotificationId;
      text.append(title);
      const detail = visual?.body ?? notification.payload?.rawContent;
      if (detail) {
        const body = document.createElement("span");
        body.className = "body";
        body.textContent = detail;
        text.append(document.createElement("br"), body);
      }
      item.append(text);
      for (const [label, action] of [
        ["Mark read", () => inbox.markRead(notification.id)],
        ["Dismiss", () => inbox.dismiss(notification.id)],
        ["Delete", () => inbox.remove(notification.id)],
      ]) {
        const button = document.createElement("button");
        button.textContent = label;
        button.className = label.toLowerCase().replace(" ", "-");
        button.disabled = label === "Mark read" && notification.readState === "read";
        button.addEventListener("click", () => action().catch((error) => this.showError(error)));
        item.append(button);
      }
      list.append(item);
    }
    root.append(list);
    this.replaceChildren(root);
  }
}

if (typeof customElements !== "undefined" && !customElements.get("notif-inbox")) {
  customElements.define("notif-inbox", NotifInboxElement);
}
