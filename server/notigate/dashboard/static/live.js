// Live updates over Server-Sent Events. The browser's EventSource reconnects by itself
// after a dropped connection; one it gave up on (an HTTP error, such as a session that
// ended) is reopened here after a pause.

const RETRY_MS = 5000;

export class Live {
  constructor({ onJob, onGap, onState, onClosed }) {
    this.onJob = onJob;
    this.onGap = onGap;
    this.onState = onState;
    // Told when the browser gave up (e.g. a 401 once the session ended).
    this.onClosed = onClosed;
    this.source = null;
    this.bot = null;
    this.retry = 0;
  }

  open(bot) {
    if (this.source && this.bot === bot) return;
    this.close();
    this.bot = bot;
    const url = bot ? `/api/events?bot=${encodeURIComponent(bot)}` : "/api/events";
    const source = new EventSource(url, { withCredentials: true });
    this.source = source;
    this.onState("connecting");
    source.addEventListener("open", () => this.onState("connected"));
    source.addEventListener("job", (e) => {
      let event;
      try {
        event = JSON.parse(e.data);
      } catch {
        return;
      }
      this.onJob(event);
    });
    source.addEventListener("gap", () => this.onGap());
    source.addEventListener("error", () => {
      if (source !== this.source) return;
      if (source.readyState === EventSource.CLOSED) {
        this.onState("offline");
        this.source = null;
        this.onClosed();
        this.retry = setTimeout(() => this.open(this.bot), RETRY_MS);
      } else {
        this.onState("reconnecting");
      }
    });
  }

  close() {
    clearTimeout(this.retry);
    if (this.source) this.source.close();
    this.source = null;
    this.onState("offline");
  }
}
