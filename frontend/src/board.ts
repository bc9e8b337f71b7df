// The floor board (/rooms/board/): keeps the room cards live.
//
// The page names its topics (data-realtime-topics="rooms.floor.ID" on <body>, from the
// view's ``realtime_topics``), which realtime.ts watches after each connect.  On every
// topic event of a floor (and on each "watching", which follows a reconnect, when
// events may have been missed) the fragment is refetched, debounced so that a burst of
// check-ins costs one request.  A refresh every 60 s covers a socket that cannot connect
// (and moves "next" and "minutes until free" along with the clock).

const DEBOUNCE_MS = 300;
const FALLBACK_MS = 60_000;

function boardElement(): HTMLElement | null {
  return document.querySelector<HTMLElement>("[data-room-board]");
}

class BoardRefresher {
  private timer: number | null = null;
  private inFlight = false;
  private again = false;

  constructor(private readonly board: HTMLElement) {}

  schedule(): void {
    if (this.timer !== null) {
      window.clearTimeout(this.timer);
    }
    this.timer = window.setTimeout(() => {
      this.timer = null;
      void this.refresh();
    }, DEBOUNCE_MS);
  }

  async refresh(): Promise<void> {
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.inFlight = true;
    try {
      const url = this.board.dataset.fragmentUrl ?? "";
      const response = await fetch(url, {
        headers: { "HX-Request": "true" },
        credentials: "same-origin",
      });
      if (response.redirected) {
        // Signed out meanwhile: the fragment URL answered with the sign-in page, which
        // must not be pasted into the board.  Reloading shows the sign-in page itself.
        window.location.reload();
        return;
      }
      if (response.ok) {
        this.board.innerHTML = await response.text();
        this.board.dataset.refreshedAt = String(Date.now());
      }
    } catch {
      // Offline for a moment: the next event or the fallback refresh tries again.
    } finally {
      this.inFlight = false;
      if (this.again) {
        this.again = false;
        this.schedule();
      }
    }
  }
}

function isBoardTopic(board: HTMLElement, topic: unknown): boolean {
  const topics = (board.dataset.realtimeTopics ?? "").split(/\s+/);
  return typeof topic === "string" && topics.includes(topic);
}

function startBoard(): void {
  const board = boardElement();
  if (board === null) {
    return;
  }
  const refresher = new BoardRefresher(board);
  const onTopic = (event: Event): void => {
    const detail = (event as CustomEvent<{ topic?: unknown }>).detail;
    if (isBoardTopic(board, detail?.topic)) {
      refresher.schedule();
    }
  };
  document.addEventListener("yakuba:topic", onTopic);
  document.addEventListener("yakuba:watching", onTopic);
  window.setInterval(() => refresher.schedule(), FALLBACK_MS);
}

document.addEventListener("DOMContentLoaded", startBoard);
