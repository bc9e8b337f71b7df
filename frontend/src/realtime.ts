// The browser's end of the real-time channel (/ws, see yakuba/realtime/gateway.py).
//
// One socket per tab.  The last event id the tab has seen is kept in sessionStorage, so
// that a reconnect (network hiccup, server restart, page reload) says where it stopped
// ({"op": "hello", "last_event_id": N}) and the server replays everything after it once,
// in order, or answers {"op": "refetch"} when the tab is too far behind.  Pages listen
// for DOM events instead of touching the socket:
//   yakuba:event    detail {id, event}    one event of the user's stream
//   yakuba:refetch  detail {lastEventId}  reload what the page shows: events were skipped
//   yakuba:signed-out                     the session ended (4401): nothing more will come
//   yakuba:watching  detail {topic}       a topic is watched (again): refetch its state
//   yakuba:topic     detail {topic, event} one live event of a watched topic
//   yakuba:ready     detail {lastEventId}  the socket is (again) ready: a page that keeps
//                                          live state resyncs it and re-sends its ops
//   yakuba:live      detail {event}        one live (not persisted, not replayed) event,
//                                          e.g. a chat message ({"op": "live"} frames)
//   yakuba:live-gap                        live events were dropped (the server's queue
//                                          overflowed): resync over HTTP
//   yakuba:frame     detail {frame}        any other frame an app op answers with
//                                          (e.g. {"op": "chat.presence_watching"})
// and a page sends a frame (an op registered in yakuba/realtime/ops.py) by dispatching
//   yakuba:send      detail {frame, sent?} on document.  It is sent only while the socket
//                                          is ready; otherwise it is DROPPED, not queued
//                                          (a queued "typing" would be stale by the time
//                                          it went out), and the handler sets
//                                          detail.sent = false (true when it went out),
//                                          which the dispatcher reads right after
//                                          dispatchEvent (it runs synchronously).  Pages
//                                          re-send their state on yakuba:ready.
// Topics (yakuba/realtime/topics.py) are live views of shared state, such as a floor
// board.  A page names its topics in <body data-realtime-topics="a.1 b.2">; they are
// watched after every (re)connect, and each "watching" answer asks the page to refetch,
// because topic events are not replayed.
// Started only on pages whose <body> has data-realtime="on" (signed-in pages); the ids
// are kept per user (data-realtime-user), since each user has a stream of their own.

type Frame =
  | { op: "ping" | "pong" }
  | { op: "ready" | "refetch"; last_event_id: number }
  | { op: "error"; code: string }
  | { op: "watching" | "unwatched"; topic: string }
  | { op: "topic"; topic: string; event: { type: string; op: string; [key: string]: unknown } }
  | { op: "live"; event: { type: string; op: string; [key: string]: unknown } }
  | { op: "live_gap" }
  | { id: number; event: { type: string; op: string; [key: string]: unknown } };

const RELOAD_KEY = "yakuba.realtime.reloaded_at";
const CLOSE_UNAUTHENTICATED = 4401;
const MAX_BACKOFF_MS = 30_000;

class RealtimeChannel {
  private socket: WebSocket | null = null;
  private attempts = 0;
  private stopped = false;
  private ready = false;

  constructor(
    private readonly url: string,
    private readonly storageKey: string,
  ) {}

  get lastEventId(): number | null {
    const stored = window.sessionStorage.getItem(this.storageKey);
    return stored === null ? null : Number(stored);
  }

  private remember(id: number): void {
    window.sessionStorage.setItem(this.storageKey, String(id));
  }

  start(): void {
    this.stopped = false;
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.attempts = 0;
      this.send({ op: "hello", last_event_id: this.lastEventId });
    });
    socket.addEventListener("message", (message: MessageEvent<string>) => {
      this.receive(JSON.parse(message.data) as Frame);
    });
    socket.addEventListener("close", (closed: CloseEvent) => this.closed(closed.code));
  }

  stop(): void {
    this.stopped = true;
    this.socket?.close(1000);
  }

  private send(frame: object): boolean {
    if (this.socket?.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  /** A page's frame (yakuba:send): only once the server said ready, else dropped. */
  sendForPage(frame: unknown): boolean {
    if (!this.ready || frame === null || typeof frame !== "object") {
      return false;
    }
    return this.send(frame);
  }

  private receive(frame: Frame): void {
    if ("id" in frame) {
      const last = this.lastEventId;
      if (last !== null && frame.id <= last) {
        return; // already seen (the server never repeats one, but a tab may restore)
      }
      this.remember(frame.id);
      emit("yakuba:event", { id: frame.id, event: frame.event });
      return;
    }
    switch (frame.op) {
      case "ping":
        this.send({ op: "pong" });
        break;
      case "ready":
        this.remember(frame.last_event_id);
        this.ready = true;
        document.body.dataset.realtimeState = "ready";
        for (const topic of pageTopics()) {
          this.send({ op: "watch", topic });
        }
        emit("yakuba:ready", { lastEventId: frame.last_event_id });
        break;
      case "live":
        emit("yakuba:live", { event: frame.event });
        break;
      case "live_gap":
        emit("yakuba:live-gap", {});
        break;
      case "watching":
        emit("yakuba:watching", { topic: frame.topic });
        break;
      case "topic":
        emit("yakuba:topic", { topic: frame.topic, event: frame.event });
        break;
      case "refetch":
        this.remember(frame.last_event_id);
        emit("yakuba:refetch", { lastEventId: frame.last_event_id });
        break;
      default:
        emit("yakuba:frame", { frame });
        break;
    }
  }

  private closed(code: number): void {
    this.socket = null;
    this.ready = false;
    document.body.dataset.realtimeState = "closed";
    if (code === CLOSE_UNAUTHENTICATED) {
      emit("yakuba:signed-out", {});
      return;
    }
    if (this.stopped) {
      return;
    }
    // Back off (1 s, 2 s, 4 s … 30 s, with jitter) so that a restarted server is not
    // met by every terminal of the ward in the same second.
    const delay = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** this.attempts) * (0.5 + Math.random() / 2);
    this.attempts += 1;
    window.setTimeout(() => this.start(), delay);
  }
}

function pageTopics(): string[] {
  return (document.body.dataset.realtimeTopics ?? "").split(/\s+/).filter((t) => t !== "");
}

function emit(name: string, detail: object): void {
  document.dispatchEvent(new CustomEvent(name, { detail }));
}

function startRealtime(): void {
  if (document.body.dataset.realtime !== "on" || !("WebSocket" in window)) {
    return;
  }
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const user = document.body.dataset.realtimeUser ?? "";
  const channel = new RealtimeChannel(
    `${scheme}//${window.location.host}/ws`,
    `yakuba.realtime.${user}.last_event_id`,
  );
  document.addEventListener("yakuba:send", (event: Event) => {
    const detail = (event as CustomEvent<{ frame?: unknown; sent?: boolean }>).detail;
    if (detail && typeof detail === "object") {
      detail.sent = channel.sendForPage(detail.frame);
    }
  });
  channel.start();
  document.addEventListener("yakuba:signed-out", reloadOnce);
  window.addEventListener("pagehide", () => channel.stop());
}

// A session ended elsewhere (sign-out everywhere, deactivation): reload, which shows the
// sign-in page.  At most once a minute, so that a socket refused for another reason
// (a proxy without WebSocket support) cannot make the page reload in a loop.
function reloadOnce(): void {
  const last = Number(window.sessionStorage.getItem(RELOAD_KEY) ?? "0");
  if (Date.now() - last > 60_000) {
    window.sessionStorage.setItem(RELOAD_KEY, String(Date.now()));
    window.location.reload();
  }
}

document.addEventListener("DOMContentLoaded", startRealtime);
