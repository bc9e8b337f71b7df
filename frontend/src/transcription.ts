// The transcription panel of a meeting's overview (minutes/recordings/panel.html).
//
// Keeps the progress bar, the time left and the job's state live: the meeting's topic
// (minutes.meeting.ID, watched by realtime.ts when the page lists it in
// data-realtime-topics) brings {"op": "job", "job": {...}} events; every "watching"
// answer (a reconnect, when events may have been missed) refetches the status JSON, and
// while a job is active the status is also polled, slowly, for a socket that cannot
// connect.  When the job ends the page reloads once, so that the lists and forms match.
// Also: a cancel button that does not leave the page, a size check before an upload is
// sent, and a confirmation before a recording is deleted.

interface JobState {
  id: number;
  status: string;
  status_label: string;
  active: boolean;
  percent: number;
  eta_seconds: number | null;
  error: string;
  engine: string;
}

const POLL_MS = 5_000;

class JobPanel {
  private job: JobState | null;
  private timer: number | null = null;

  constructor(private readonly root: HTMLElement) {
    this.job = parseJob(root.dataset.job ?? "null");
  }

  start(): void {
    this.render();
    document.addEventListener("yakuba:topic", (event: Event) => {
      const detail = (event as CustomEvent<{ topic?: unknown; event?: unknown }>).detail;
      if (detail?.topic !== this.root.dataset.topic) {
        return;
      }
      const payload = detail.event as { op?: string; job?: JobState } | undefined;
      if (payload?.op === "job" && payload.job !== undefined) {
        this.update(payload.job);
      }
    });
    document.addEventListener("yakuba:watching", (event: Event) => {
      const detail = (event as CustomEvent<{ topic?: unknown }>).detail;
      if (detail?.topic === this.root.dataset.topic) {
        void this.refresh();
      }
    });
    this.root.querySelector<HTMLFormElement>("form[data-job-cancel]")?.addEventListener(
      "submit",
      (event: SubmitEvent) => {
        event.preventDefault();
        void this.cancel(event.target as HTMLFormElement);
      },
    );
    this.schedulePoll();
  }

  private schedulePoll(): void {
    if (this.timer !== null) {
      window.clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.job?.active) {
      this.timer = window.setTimeout(() => void this.refresh(), POLL_MS);
    }
  }

  private async refresh(): Promise<void> {
    try {
      const response = await fetch(this.root.dataset.statusUrl ?? "", {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (response.ok && !response.redirected) {
        const body = (await response.json()) as { job: JobState | null };
        if (body.job !== null) {
          this.update(body.job);
          return;
        }
      }
    } catch {
      // Offline for a moment: the next poll or event tries again.
    }
    this.schedulePoll();
  }

  private async cancel(form: HTMLFormElement): Promise<void> {
    const button = form.querySelector<HTMLButtonElement>("button");
    if (button !== null) {
      button.disabled = true;
    }
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      const body = (await response.json()) as { job?: JobState; error?: string };
      if (body.job !== undefined) {
        this.update(body.job);
      } else if (body.error !== undefined) {
        this.showError(body.error);
      }
    } catch {
      form.submit(); // let the browser try, and show the server's answer
    }
  }

  private update(job: JobState): void {
    const wasActive = this.job?.active ?? false;
    if (this.job !== null && job.id < this.job.id) {
      return; // an old job's late event
    }
    this.job = job;
    this.render();
    if (wasActive && !job.active) {
      // Finished, cancelled or failed: the lists and forms change with it.
      window.setTimeout(() => window.location.reload(), 1_500);
      return;
    }
    this.schedulePoll();
  }

  private render(): void {
    const job = this.job;
    if (job === null) {
      return;
    }
    const state = this.root.querySelector<HTMLElement>("[data-job-state]");
    if (state !== null) {
      state.textContent =
        job.status === "done"
          ? (this.root.dataset.doneLabel ?? job.status_label)
          : `${job.status_label}（${job.engine}）`;
    }
    const progress = this.root.querySelector<HTMLElement>("[data-job-progress]");
    if (progress !== null) {
      progress.hidden = !job.active;
    }
    const bar = this.root.querySelector<HTMLProgressElement>("progress");
    if (bar !== null) {
      bar.value = job.percent;
      bar.textContent = `${job.percent}%`;
    }
    const percent = this.root.querySelector<HTMLElement>("[data-job-percent]");
    if (percent !== null) {
      percent.textContent = `${job.percent}%`;
    }
    const eta = this.root.querySelector<HTMLElement>("[data-job-eta]");
    if (eta !== null) {
      eta.textContent = job.active ? `${this.root.dataset.etaLabel ?? ""}: ${this.etaText(job)}` : "";
    }
    const cancel = this.root.querySelector<HTMLElement>("form[data-job-cancel]");
    if (cancel !== null) {
      cancel.hidden = !(job.status === "queued" || job.status === "running");
    }
    if (job.error !== "") {
      this.showError(job.error);
    }
  }

  private etaText(job: JobState): string {
    const left = job.eta_seconds;
    if (left === null) {
      return this.root.dataset.etaUnknown ?? "";
    }
    if (left >= 90) {
      return (this.root.dataset.minutesLabel ?? "%s").replace("%s", String(Math.round(left / 60)));
    }
    return (this.root.dataset.secondsLabel ?? "%s").replace("%s", String(Math.max(1, left)));
  }

  private showError(message: string): void {
    const error = this.root.querySelector<HTMLElement>("[data-job-error]");
    if (error !== null) {
      error.textContent = message;
      error.hidden = false;
    }
  }
}

function parseJob(text: string): JobState | null {
  try {
    return JSON.parse(text) as JobState | null;
  } catch {
    return null;
  }
}

// An upload over the limit is refused here, before minutes of sending it.
function checkUploadSize(input: HTMLInputElement): void {
  const limit = Number(input.dataset.maxBytes ?? "0");
  const file = input.files?.[0];
  const tooLarge = limit > 0 && file !== undefined && file.size > limit;
  input.setCustomValidity(tooLarge ? (input.dataset.tooLarge ?? "") : "");
  if (tooLarge) {
    input.reportValidity();
  }
}

function startTranscriptionPanel(): void {
  const root = document.querySelector<HTMLElement>("[data-transcription]");
  if (root !== null) {
    new JobPanel(root).start();
  }
  document.querySelectorAll<HTMLInputElement>("input[data-max-bytes]").forEach((input) => {
    input.addEventListener("change", () => checkUploadSize(input));
  });
  document
    .querySelectorAll<HTMLButtonElement>(".recordings-panel button[data-confirm]")
    .forEach((button) => {
      button.addEventListener("click", (event: MouseEvent) => {
        if (!window.confirm(button.dataset.confirm ?? "")) {
          event.preventDefault();
        }
      });
    });
}

document.addEventListener("DOMContentLoaded", startTranscriptionPanel);
