// The minutes page (/minutes/<id>/minutes/): tells the reader when someone else changed
// the minutes.
//
// The page names the meeting's topic (<body data-realtime-topics="minutes.meeting.ID">,
// from the view's ``realtime_topics``), which realtime.ts watches.  On a "minutes" event
// made by another user (saved, summarised, sent for review, returned, approved,
// commented) a polite banner offers a reload link.  The page never reloads by itself:
// the reader may be typing in the form, and a save from the old revision is refused
// with what was typed kept (StaleMinutes), so nothing is lost by waiting.

const BANNER_ID = "minutes-changed";

function minutesTopic(): string | null {
  const topics = (document.body.dataset.realtimeTopics ?? "").split(/\s+/);
  return topics.find((topic) => topic.startsWith("minutes.meeting.")) ?? null;
}

function currentUser(): number {
  return Number(document.body.dataset.realtimeUser ?? "0");
}

function showBanner(host: HTMLElement): void {
  if (document.getElementById(BANNER_ID) !== null) {
    return; // one banner is enough, however many changes follow
  }
  const banner = document.createElement("div");
  banner.id = BANNER_ID;
  banner.className = "minutes-changed card";
  banner.setAttribute("role", "status");
  const text = document.createElement("p");
  text.textContent = host.dataset.changedText ?? "他の人が議事録を更新しました。";
  const link = document.createElement("a");
  link.href = window.location.pathname;
  link.textContent = host.dataset.reloadText ?? "再読み込みして最新の内容を表示する";
  text.append(" ", link);
  banner.append(text);
  host.prepend(banner);
}

type TopicDetail = { topic?: unknown; event?: { op?: unknown; by?: unknown } };

function startMinutesPage(): void {
  const host = document.querySelector<HTMLElement>("[data-minutes-page]");
  const topic = minutesTopic();
  if (host === null || topic === null) {
    return;
  }
  document.addEventListener("yakuba:topic", (event: Event) => {
    const detail = (event as CustomEvent<TopicDetail>).detail;
    const change = detail?.event;
    if (detail?.topic !== topic || change?.op !== "minutes") {
      return;
    }
    if (typeof change.by === "number" && change.by === currentUser()) {
      return; // this user's own change, in this tab or another: already shown on reload
    }
    showBanner(host);
  });
}

document.addEventListener("DOMContentLoaded", startMinutesPage);
