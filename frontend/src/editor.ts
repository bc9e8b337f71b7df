// The transcript editor (/minutes/<id>/transcript/): in-place editing of segments,
// play a segment, merge, split, speakers, and other people's changes shown live.
//
// The page is rendered on the server and works without this script (each segment is a
// form).  Here: no framework, plain DOM, events delegated to the list, so that segments
// added later (a split, the transcription job) behave like the first ones.
//
// Neither of two editors loses an edit: each segment remembers the text and revision its
// editor started from (baseText, baseRevision) and sends both with the new text; the
// server merges with whatever was saved meanwhile, or answers 409 when both changed the
// same words: the box then keeps the person's text and shows the other one beside it.
// A live change to a segment nobody is typing in replaces its text; one that arrives
// while the person types leaves their text alone (and is merged when they save).
//
// Keyboard: Enter or Ctrl+Enter saves (Shift+Enter starts a new line), leaving the box
// saves too.  An Enter that confirms a Japanese IME conversion never saves
// (isComposing, keyCode 229, and our own compositionstart/end flag for browsers that
// report the Enter after compositionend).
//
// UI strings come from the page (data-msg-* on #transcript, rendered through gettext).

interface SegmentData {
  id: number;
  start_ms: number;
  end_ms: number;
  speaker_id: number | null;
  text: string;
  engine: string;
  confidence: number | null;
  recognised: boolean;
  recording_id: number | null;
  revision: number;
}

interface SpeakerData {
  id: number;
  label: string;
  user_id: number | null;
}

interface RecordingData {
  url: string;
  offset_ms: number;
}

interface TranscriptState {
  segments: SegmentData[];
  speakers: SpeakerData[];
  recordings: Record<string, RecordingData>;
  may_edit: boolean;
}

interface Answer {
  status: number;
  data: { [key: string]: unknown };
}

const REMOTE_NOTICE_MS = 4000;

function csrfToken(): string {
  try {
    const headers = JSON.parse(document.body.getAttribute("hx-headers") ?? "{}") as {
      [key: string]: string;
    };
    if (headers["X-CSRFToken"]) {
      return headers["X-CSRFToken"];
    }
  } catch {
    // fall through to the cookie
  }
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function send(url: string, method: "GET" | "POST", body?: object): Promise<Answer> {
  try {
    const response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: {
        Accept: "application/json",
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        ...(method === "POST" ? { "X-CSRFToken": csrfToken() } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data: { [key: string]: unknown } = {};
    try {
      data = (await response.json()) as { [key: string]: unknown };
    } catch {
      // not JSON (a proxy's error page): the status says enough
    }
    return { status: response.status, data };
  } catch {
    return { status: 0, data: {} };
  }
}

function minuteSecond(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  const mm = String(minutes).padStart(2, "0");
  const ss = String(seconds).padStart(2, "0");
  return hours > 0 ? `${hours}:${mm}:${ss}` : `${mm}:${ss}`;
}

class SegmentView {
  baseText: string;
  baseRevision: number;
  saving: Promise<void> | null = null;
  again = false;
  conflict = false;
  composing = false;
  private noticeTimer: number | null = null;

  constructor(
    readonly el: HTMLLIElement,
    public data: SegmentData,
  ) {
    this.baseText = data.text;
    this.baseRevision = data.revision;
  }

  get id(): number {
    return this.data.id;
  }

  box(): HTMLTextAreaElement | null {
    return this.el.querySelector<HTMLTextAreaElement>("textarea[data-text]");
  }

  dirty(): boolean {
    const box = this.box();
    return box !== null && box.value !== this.baseText;
  }

  busy(): boolean {
    return this.dirty() || this.saving !== null || this.conflict || this.composing;
  }

  setState(state: string, message: string): void {
    this.el.dataset.state = state;
    const slot = this.el.querySelector<HTMLElement>("[data-state]");
    if (slot !== null) {
      slot.textContent = message;
      slot.className = `segment-state ${state}`;
    }
  }

  notice(message: string, keep = false): void {
    const slot = this.el.querySelector<HTMLElement>("[data-remote]");
    if (slot === null) {
      return;
    }
    slot.textContent = message;
    slot.hidden = message === "";
    if (this.noticeTimer !== null) {
      window.clearTimeout(this.noticeTimer);
      this.noticeTimer = null;
    }
    if (!keep && message !== "") {
      this.noticeTimer = window.setTimeout(() => this.notice(""), REMOTE_NOTICE_MS);
    }
  }

  showConflict(theirs: string | null): void {
    let panel = this.el.querySelector<HTMLElement>("[data-conflict]");
    if (panel === null && theirs !== null) {
      // The server leaves the panel out of each row (a long meeting's page stays
      // small); the first conflict copies it from the segment template.
      panel = conflictPanel();
      if (panel !== null) {
        this.el.querySelector("form[data-edit-form]")?.append(panel);
      }
    }
    if (panel === null) {
      return;
    }
    panel.hidden = theirs === null;
    const quote = panel.querySelector<HTMLElement>("[data-theirs]");
    if (quote !== null) {
      quote.textContent = theirs ?? "";
    }
  }

  // What the server says the segment is now: times, speaker, and the text unless the
  // person is typing in it.
  render(data: SegmentData, editor: Editor): void {
    this.data = data;
    const el = this.el;
    el.dataset.revision = String(data.revision);
    el.dataset.startMs = String(data.start_ms);
    el.dataset.endMs = String(data.end_ms);
    el.dataset.speakerId = data.speaker_id === null ? "" : String(data.speaker_id);
    el.dataset.recordingId = data.recording_id === null ? "" : String(data.recording_id);
    el.dataset.recognised = data.recognised ? "1" : "0";
    el.classList.toggle("segment-pending", !data.recognised);
    const clock = minuteSecond(data.start_ms);
    el.querySelectorAll<HTMLElement>("[data-time], [data-label-time]").forEach((node) => {
      node.textContent = clock;
    });
    const play = el.querySelector<HTMLButtonElement>("[data-play]");
    if (play !== null) {
      const recording = editor.recording(data.recording_id);
      play.dataset.audioUrl = recording?.url ?? "";
      play.dataset.offsetMs = String(recording?.offset_ms ?? 0);
      play.disabled = !recording?.url;
      play.setAttribute("aria-label", `${play.getAttribute("aria-label")?.split(" ")[0] ?? ""} ${clock}`);
    }
    editor.renderSpeaker(this);
    const box = this.box();
    if (box !== null) {
      box.readOnly = !data.recognised;
      if (!this.busy()) {
        if (box.value !== data.text) {
          const caret = document.activeElement === box ? box.selectionStart : null;
          box.value = data.text;
          if (caret !== null) {
            box.setSelectionRange(Math.min(caret, box.value.length), Math.min(caret, box.value.length));
          }
        }
        this.baseText = data.text;
        this.baseRevision = data.revision;
      }
    } else {
      const text = el.querySelector<HTMLElement>("[data-text]");
      if (text !== null) {
        text.textContent = data.text;
      }
      this.baseText = data.text;
      this.baseRevision = data.revision;
    }
  }
}

class Editor {
  private readonly views = new Map<number, SegmentView>();
  private speakers: SpeakerData[] = [];
  private recordings: Record<string, RecordingData> = {};
  private readonly list: HTMLElement;
  private readonly audio: HTMLAudioElement;
  private stopAt: number | null = null;
  private playing: HTMLElement | null = null;
  private readonly mayEdit: boolean;
  private readonly userId: string;
  private fetching = false;

  constructor(private readonly root: HTMLElement) {
    this.list = root.querySelector<HTMLElement>("[data-segment-list]") ?? root;
    this.audio = root.querySelector<HTMLAudioElement>("audio") ?? document.createElement("audio");
    this.mayEdit = root.dataset.mayEdit === "1";
    this.userId = root.dataset.userId ?? "";
    // The recordings come once with the page (not on each of ~1,500 rows).
    try {
      this.recordings = JSON.parse(root.dataset.recordings ?? "{}") as Record<string, RecordingData>;
    } catch {
      this.recordings = {};
    }
  }

  msg(name: string): string {
    return this.root.dataset[name] ?? "";
  }

  // --- start -------------------------------------------------------------------------

  start(): void {
    this.list.querySelectorAll<HTMLLIElement>("li[data-segment-id]").forEach((el) => {
      const view = new SegmentView(el, this.dataFromElement(el));
      this.views.set(view.id, view);
      this.enhance(el);
    });
    this.speakers = this.speakersFromPage();
    this.list.addEventListener("keydown", (event) => this.onKeyDown(event));
    this.list.addEventListener("compositionstart", (event) => this.withView(event, (v) => (v.composing = true)));
    this.list.addEventListener("compositionend", (event) => this.withView(event, (v) => (v.composing = false)));
    this.list.addEventListener("focusout", (event) => this.onFocusOut(event));
    this.list.addEventListener("focusin", (event) => this.withView(event, (v) => v.el.classList.add("editing")));
    this.list.addEventListener("click", (event) => this.onClick(event));
    this.list.addEventListener("change", (event) => this.onChange(event));
    this.list.addEventListener("submit", (event) => this.onSubmit(event));
    const speakerBox = document.getElementById("speakers");
    speakerBox?.addEventListener("submit", (event) => this.onSpeakerSubmit(event));
    this.audio.addEventListener("timeupdate", () => this.onTimeUpdate());
    this.audio.addEventListener("pause", () => this.markPlaying(null));
    document.addEventListener("yakuba:topic", (event) => this.onTopic(event as CustomEvent));
    document.addEventListener("yakuba:watching", (event) => this.onWatching(event as CustomEvent));
    document.addEventListener("yakuba:refetch", () => void this.refetch());
    window.addEventListener("beforeunload", (event) => {
      if ([...this.views.values()].some((view) => view.dirty())) {
        event.preventDefault();
        event.returnValue = this.msg("msgUnsaved");
      }
    });
    this.root.dataset.ready = "1";
  }

  private dataFromElement(el: HTMLElement): SegmentData {
    const box = el.querySelector<HTMLTextAreaElement>("textarea[data-text]");
    const text = box !== null ? box.value : (el.querySelector<HTMLElement>("[data-text]")?.textContent ?? "");
    const optional = (value: string | undefined): number | null =>
      value === undefined || value === "" ? null : Number(value);
    return {
      id: Number(el.dataset.segmentId),
      start_ms: Number(el.dataset.startMs),
      end_ms: Number(el.dataset.endMs),
      speaker_id: optional(el.dataset.speakerId),
      recording_id: optional(el.dataset.recordingId),
      text,
      engine: "",
      confidence: null,
      recognised: el.dataset.recognised === "1",
      revision: Number(el.dataset.revision),
    };
  }

  private speakersFromPage(): SpeakerData[] {
    const select = this.list.querySelector<HTMLSelectElement>("select[data-speaker-select]");
    if (select !== null) {
      return Array.from(select.options)
        .filter((option) => option.value !== "")
        .map((option) => ({ id: Number(option.value), label: option.text, user_id: null }));
    }
    const found: SpeakerData[] = [];
    document.querySelectorAll<HTMLElement>("#speakers [data-speaker-id]").forEach((item) => {
      const label = item.querySelector<HTMLElement>("[data-speaker-label]")?.textContent ?? "";
      found.push({ id: Number(item.dataset.speakerId), label, user_id: null });
    });
    return found;
  }

  // Buttons that need this script are hidden in the HTML; the no-script buttons go.
  private enhance(el: HTMLElement): void {
    el.querySelectorAll<HTMLElement>("[data-nojs]").forEach((node) => (node.hidden = true));
    if (this.mayEdit) {
      el.querySelectorAll<HTMLElement>("[data-merge], [data-split]").forEach((node) => (node.hidden = false));
    }
  }

  private viewOf(target: EventTarget | null): SegmentView | null {
    if (!(target instanceof Element)) {
      return null;
    }
    const el = target.closest<HTMLElement>("li[data-segment-id]");
    return el === null ? null : (this.views.get(Number(el.dataset.segmentId)) ?? null);
  }

  private withView(event: Event, act: (view: SegmentView) => void): void {
    const view = this.viewOf(event.target);
    if (view !== null) {
      act(view);
    }
  }

  recording(id: number | null): RecordingData | null {
    if (id === null) {
      return null;
    }
    return this.recordings[String(id)] ?? null;
  }

  // --- keyboard and focus ---------------------------------------------------------------

  private onKeyDown(event: KeyboardEvent): void {
    const target = event.target;
    if (!(target instanceof HTMLTextAreaElement) || event.key !== "Enter") {
      return;
    }
    const view = this.viewOf(target);
    if (view === null) {
      return;
    }
    // An Enter that confirms an IME conversion belongs to the IME.
    if (event.isComposing || event.keyCode === 229 || view.composing) {
      return;
    }
    if (event.shiftKey && !(event.ctrlKey || event.metaKey)) {
      return; // a new line
    }
    event.preventDefault();
    void this.save(view, true);
  }

  private onFocusOut(event: FocusEvent): void {
    const view = this.viewOf(event.target);
    if (view === null) {
      return;
    }
    const next = event.relatedTarget;
    if (!(next instanceof Node) || !view.el.contains(next)) {
      view.el.classList.remove("editing");
    }
    if (event.target instanceof HTMLTextAreaElement && view.dirty() && !view.conflict) {
      void this.save(view, false);
    }
  }

  // --- saving ---------------------------------------------------------------------------

  private segmentUrl(id: number, action: string): string {
    return `${this.root.dataset.segmentsUrl ?? ""}${id}/${action}`;
  }

  save(view: SegmentView, explicit: boolean): Promise<void> {
    if (view.saving !== null) {
      view.again = true;
      return view.saving;
    }
    const box = view.box();
    if (box === null || !view.data.recognised) {
      return Promise.resolve();
    }
    if (!view.dirty()) {
      if (explicit && !view.conflict) {
        view.setState("saved", this.msg("msgSaved"));
      }
      return Promise.resolve();
    }
    if (view.conflict && !explicit) {
      return Promise.resolve();
    }
    view.saving = this.saveNow(view, box).finally(() => {
      view.saving = null;
      if (view.again) {
        view.again = false;
        if (view.dirty() && !view.conflict) {
          void this.save(view, false);
        }
      }
    });
    return view.saving;
  }

  private async saveNow(view: SegmentView, box: HTMLTextAreaElement): Promise<void> {
    const sent = box.value;
    view.setState("saving", this.msg("msgSaving"));
    const answer = await send(this.segmentUrl(view.id, "text"), "POST", {
      text: sent,
      base_revision: view.baseRevision,
      base_text: view.baseText,
    });
    const segment = answer.data.segment as SegmentData | undefined;
    if (answer.status === 200 && segment !== undefined) {
      const typedSince = box.value !== sent;
      view.conflict = false;
      view.showConflict(null);
      // The server's text is the base from now on; what the person typed while the
      // save was on its way stays in the box, based on what was sent.
      view.baseText = typedSince ? sent : segment.text;
      view.baseRevision = segment.revision;
      if (!typedSince) {
        box.value = segment.text;
      }
      view.render(segment, this);
      const merged = answer.data.status === "merged";
      view.setState(merged ? "merged" : "saved", this.msg(merged ? "msgMerged" : "msgSaved"));
      view.notice("");
      return;
    }
    if (answer.status === 409 && segment !== undefined) {
      // Keep the person's text; from now on it is based on the other one, which is
      // shown beside it until they save again (their choice) or take the other text.
      view.conflict = true;
      view.baseText = segment.text;
      view.baseRevision = segment.revision;
      view.render(segment, this);
      view.showConflict(segment.text);
      view.setState("conflict", this.msg("msgConflict"));
      return;
    }
    if (answer.status === 404) {
      this.orphan(view);
      return;
    }
    const error = typeof answer.data.error === "string" ? answer.data.error : this.msg("msgError");
    view.setState("error", error);
  }

  // The segment went (merged by someone else) while this person had unsaved text: show
  // the text so that it can be copied, never drop it.
  private orphan(view: SegmentView): void {
    const text = view.box()?.value ?? "";
    this.views.delete(view.id);
    const note = document.createElement("li");
    note.className = "segment-orphan";
    note.setAttribute("role", "alert");
    note.textContent = `${this.msg("msgGone")}\n${text}`;
    view.el.replaceWith(note);
  }

  // --- clicks: play, merge, split, conflict choices ----------------------------------------

  private onClick(event: MouseEvent): void {
    const target = event.target instanceof Element ? event.target.closest<HTMLElement>("button") : null;
    const view = this.viewOf(target);
    if (target === null || view === null) {
      return;
    }
    if (target.hasAttribute("data-play")) {
      this.play(view, target);
    } else if (target.hasAttribute("data-merge")) {
      void this.mergeWithNext(view);
    } else if (target.hasAttribute("data-split")) {
      void this.splitAtCaret(view);
    } else if (target.hasAttribute("data-use-theirs")) {
      const box = view.box();
      if (box !== null) {
        box.value = view.baseText;
      }
      view.conflict = false;
      view.showConflict(null);
      view.setState("saved", "");
      box?.focus();
    } else if (target.hasAttribute("data-keep-mine")) {
      void this.save(view, true);
    }
  }

  private play(view: SegmentView, button: HTMLElement): void {
    const recording = this.recording(view.data.recording_id);
    const url = recording?.url ?? "";
    if (url === "") {
      return;
    }
    const offset = recording?.offset_ms ?? 0;
    const from = Math.max(0, (view.data.start_ms - offset) / 1000);
    this.stopAt = (view.data.end_ms - offset) / 1000;
    const absolute = new URL(url, window.location.href).href;
    const begin = (): void => {
      this.audio.currentTime = from;
      void this.audio.play().catch(() => undefined);
      this.markPlaying(button);
    };
    if (this.audio.src !== absolute) {
      this.audio.src = absolute;
      this.audio.addEventListener("loadedmetadata", begin, { once: true });
      this.audio.load();
    } else if (this.audio.readyState < 1) {
      this.audio.addEventListener("loadedmetadata", begin, { once: true });
    } else {
      begin();
    }
  }

  private onTimeUpdate(): void {
    if (this.stopAt !== null && this.audio.currentTime >= this.stopAt) {
      this.stopAt = null;
      this.audio.pause();
    }
  }

  private markPlaying(button: HTMLElement | null): void {
    this.playing?.classList.remove("playing");
    this.playing = button;
    button?.classList.add("playing");
    this.root.dataset.playing = button === null ? "" : (this.viewOf(button)?.id.toString() ?? "");
  }

  private nextView(view: SegmentView): SegmentView | null {
    let el = view.el.nextElementSibling;
    while (el !== null) {
      const found = this.viewOf(el);
      if (found !== null) {
        return found;
      }
      el = el.nextElementSibling;
    }
    return null;
  }

  // Unsaved text goes first, so that a merge or split works on what the person sees.
  private async settle(view: SegmentView): Promise<boolean> {
    if (view.saving !== null) {
      await view.saving;
    }
    if (view.dirty()) {
      await this.save(view, true);
    }
    return !view.dirty() && !view.conflict;
  }

  private async mergeWithNext(view: SegmentView): Promise<void> {
    const next = this.nextView(view);
    if (next === null) {
      view.setState("error", this.msg("msgNoNext"));
      return;
    }
    if (!(await this.settle(view)) || !(await this.settle(next))) {
      return;
    }
    view.setState("saving", this.msg("msgSaving"));
    const answer = await send(this.segmentUrl(view.id, "merge"), "POST", { with: next.id });
    if (answer.status === 200) {
      this.applySegments([answer.data.segment as SegmentData], answer.data.removed as number[]);
      view.setState("saved", this.msg("msgSaved"));
      return;
    }
    view.setState("error", typeof answer.data.error === "string" ? answer.data.error : this.msg("msgError"));
  }

  private async splitAtCaret(view: SegmentView): Promise<void> {
    const box = view.box();
    if (box === null) {
      return;
    }
    const caret = box.selectionStart;
    if (!(await this.settle(view))) {
      return;
    }
    if (caret <= 0 || caret >= box.value.length) {
      view.setState("error", this.msg("msgSplitCaret"));
      return;
    }
    view.setState("saving", this.msg("msgSaving"));
    const answer = await send(this.segmentUrl(view.id, "split"), "POST", {
      at_char: caret,
      base_revision: view.baseRevision,
    });
    if (answer.status === 200) {
      this.applySegments(answer.data.segments as SegmentData[], []);
      view.setState("saved", this.msg("msgSaved"));
      return;
    }
    view.setState("error", typeof answer.data.error === "string" ? answer.data.error : this.msg("msgError"));
  }

  // --- speakers ------------------------------------------------------------------------

  private onChange(event: Event): void {
    const target = event.target;
    if (!(target instanceof HTMLSelectElement) || !target.hasAttribute("data-speaker-select")) {
      return;
    }
    const view = this.viewOf(target);
    if (view === null) {
      return;
    }
    void (async () => {
      view.setState("saving", this.msg("msgSaving"));
      const speakerId = target.value === "" ? null : Number(target.value);
      const answer = await send(this.segmentUrl(view.id, "speaker"), "POST", { speaker_id: speakerId });
      if (answer.status === 200) {
        this.applySegments([answer.data.segment as SegmentData], []);
        view.setState("saved", this.msg("msgSaved"));
      } else {
        view.setState("error", typeof answer.data.error === "string" ? answer.data.error : this.msg("msgError"));
      }
    })();
  }

  private onSubmit(event: SubmitEvent): void {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) {
      return;
    }
    const view = this.viewOf(form);
    if (view === null) {
      return;
    }
    event.preventDefault();
    if (form.hasAttribute("data-edit-form")) {
      void this.save(view, true);
    }
  }

  private onSpeakerSubmit(event: SubmitEvent): void {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) {
      return;
    }
    const adding = form.hasAttribute("data-speaker-add");
    if (!adding && !form.hasAttribute("data-speaker-rename")) {
      return;
    }
    event.preventDefault();
    const slot = form.querySelector<HTMLElement>("[data-state]");
    const fields = new FormData(form);
    const body: { [key: string]: unknown } = { label: String(fields.get("label") ?? "") };
    const user = String(fields.get("user_id") ?? "");
    body.user_id = user === "" ? null : Number(user);
    void (async () => {
      if (slot !== null) {
        slot.textContent = this.msg("msgSaving");
      }
      const answer = await send(form.action, "POST", body);
      const speaker = answer.data.speaker as SpeakerData | undefined;
      if ((answer.status === 200 || answer.status === 201) && speaker !== undefined) {
        const others = this.speakers.filter((known) => known.id !== speaker.id);
        this.updateSpeakers([...others, speaker]);
        if (adding) {
          form.reset();
        }
        if (slot !== null) {
          slot.textContent = this.msg("msgSaved");
        }
      } else if (slot !== null) {
        slot.textContent = typeof answer.data.error === "string" ? answer.data.error : this.msg("msgError");
      }
    })();
  }

  renderSpeaker(view: SegmentView): void {
    const speaker = this.speakers.find((known) => known.id === view.data.speaker_id);
    const label = view.el.querySelector<HTMLElement>("[data-speaker-label]");
    if (label !== null) {
      label.textContent = speaker?.label ?? this.msg("msgUnknownSpeaker");
    }
    const select = view.el.querySelector<HTMLSelectElement>("select[data-speaker-select]");
    if (select !== null) {
      const wanted = ["", ...this.speakers.map((s) => String(s.id))];
      const have = Array.from(select.options).map((option) => option.value);
      if (wanted.join(",") !== have.join(",")) {
        const unknown = select.options[0]?.text ?? this.msg("msgUnknownSpeaker");
        select.replaceChildren(new Option(unknown, ""));
        for (const known of this.speakers) {
          select.add(new Option(known.label, String(known.id)));
        }
      } else {
        this.speakers.forEach((known, index) => {
          select.options[index + 1].text = known.label;
        });
      }
      select.value = view.data.speaker_id === null ? "" : String(view.data.speaker_id);
    }
  }

  updateSpeakers(speakers: SpeakerData[]): void {
    this.speakers = speakers;
    for (const view of this.views.values()) {
      this.renderSpeaker(view);
    }
    const list = document.querySelector<HTMLElement>("#speakers [data-speaker-list]");
    const template = document.getElementById("speaker-template") as HTMLTemplateElement | null;
    if (list === null) {
      return;
    }
    for (const speaker of speakers) {
      let item = list.querySelector<HTMLElement>(`li[data-speaker-id="${speaker.id}"]`);
      if (item === null) {
        const copy = template?.content.firstElementChild?.cloneNode(true);
        if (!(copy instanceof HTMLElement)) {
          continue;
        }
        item = copy;
        item.dataset.speakerId = String(speaker.id);
        const form = item.querySelector<HTMLFormElement>("form");
        if (form !== null) {
          form.action = `${this.root.dataset.speakersUrl ?? ""}${speaker.id}/`;
        }
        item.querySelectorAll<HTMLElement>("input[name=label], select[name=user_id]").forEach((field) => {
          const kind = field.getAttribute("name") === "label" ? "label" : "user";
          field.id = `speaker-${kind}-${speaker.id}`;
          const label = field.previousElementSibling;
          if (label instanceof HTMLLabelElement) {
            label.htmlFor = field.id;
          }
        });
        list.appendChild(item);
      }
      const input = item.querySelector<HTMLInputElement>("input[name=label]");
      if (input !== null && document.activeElement !== input) {
        input.value = speaker.label;
      }
      const staff = item.querySelector<HTMLSelectElement>("select[name=user_id]");
      if (staff !== null && document.activeElement !== staff) {
        staff.value = speaker.user_id === null ? "" : String(speaker.user_id);
      }
      const text = item.querySelector<HTMLElement>("[data-speaker-label]");
      if (text !== null) {
        text.textContent = speaker.label;
      }
    }
  }

  // --- live updates -----------------------------------------------------------------------

  private isOurTopic(topic: unknown): boolean {
    return typeof topic === "string" && topic === this.root.dataset.topic;
  }

  private onTopic(event: CustomEvent): void {
    const detail = event.detail as { topic?: unknown; event?: { [key: string]: unknown } };
    if (!this.isOurTopic(detail.topic) || detail.event?.type !== "minutes") {
      return;
    }
    const payload = detail.event;
    const byOther = String(payload.by ?? "") !== this.userId;
    if (payload.op === "segments") {
      const segments = (payload.segments as SegmentData[] | undefined) ?? [];
      this.applySegments(segments, (payload.removed as number[] | undefined) ?? [], byOther);
    } else if (payload.op === "speakers") {
      this.updateSpeakers((payload.speakers as SpeakerData[] | undefined) ?? []);
    }
  }

  private onWatching(event: CustomEvent): void {
    const detail = event.detail as { topic?: unknown };
    if (this.isOurTopic(detail.topic)) {
      void this.refetch();
    }
  }

  // After a (re)connect the events in between are lost: the whole state comes again.
  async refetch(): Promise<void> {
    if (this.fetching) {
      return;
    }
    this.fetching = true;
    try {
      const answer = await send(this.root.dataset.segmentsUrl ?? "", "GET");
      if (answer.status !== 200) {
        return;
      }
      const state = answer.data as unknown as TranscriptState;
      this.recordings = state.recordings ?? {};
      this.updateSpeakers(state.speakers ?? []);
      const present = new Set(state.segments.map((segment) => segment.id));
      const gone = [...this.views.keys()].filter((id) => !present.has(id));
      this.applySegments(state.segments, gone, false, true);
      this.root.dataset.refetchedAt = String(Date.now());
    } finally {
      this.fetching = false;
    }
  }

  applySegments(segments: SegmentData[], removed: number[], byOther = false, full = false): void {
    for (const id of removed) {
      const view = this.views.get(id);
      if (view === undefined) {
        continue;
      }
      if (view.dirty()) {
        this.orphan(view);
      } else {
        this.views.delete(id);
        view.el.remove();
      }
    }
    for (const segment of segments) {
      const view = this.views.get(segment.id);
      if (view === undefined) {
        this.insert(segment);
        continue;
      }
      if (segment.revision < view.data.revision || (segment.revision === view.data.revision && !full)) {
        continue; // older news than what the page shows (our own save came back first)
      }
      const textChanged = segment.text !== view.baseText;
      view.render(segment, this);
      if (byOther && textChanged) {
        view.notice(view.busy() ? this.msg("msgRemote") : this.msg("msgChangedBy"), view.busy());
      }
    }
    this.list.querySelector("[data-empty]")?.remove();
  }

  private insert(segment: SegmentData): void {
    const template = document.getElementById("segment-template") as HTMLTemplateElement | null;
    const copy = template?.content.firstElementChild?.cloneNode(true);
    if (!(copy instanceof HTMLLIElement)) {
      return;
    }
    copy.id = `segment-${segment.id}`;
    copy.dataset.segmentId = String(segment.id);
    const box = copy.querySelector<HTMLTextAreaElement>("textarea[data-text]");
    if (box !== null) {
      box.id = `text-${segment.id}`;
      box.value = segment.text;
      const label = copy.querySelector<HTMLLabelElement>("form[data-edit-form] label");
      if (label !== null) {
        label.htmlFor = box.id;
      }
    }
    const select = copy.querySelector<HTMLSelectElement>("select[data-speaker-select]");
    if (select !== null) {
      select.id = `speaker-of-${segment.id}`;
      const label = select.previousElementSibling;
      if (label instanceof HTMLLabelElement) {
        label.htmlFor = select.id;
      }
    }
    copy.querySelectorAll<HTMLFormElement>("form").forEach((form) => {
      const action = form.hasAttribute("data-edit-form") ? "text" : "speaker";
      form.action = this.segmentUrl(segment.id, action);
    });
    const view = new SegmentView(copy, segment);
    this.views.set(segment.id, view);
    this.enhance(copy);
    // In time order; existing elements never move (moving one would take the focus
    // from a person typing in it).
    // The list is in time order: walk back from its end, so that a new segment at the
    // end (the usual case while a job runs) costs one step, not one per segment.
    let before: Element | null = null;
    for (let node = this.list.lastElementChild; node !== null; node = node.previousElementSibling) {
      const other = node instanceof HTMLElement ? this.views.get(Number(node.dataset.segmentId)) : undefined;
      if (other === undefined) {
        continue;
      }
      const later =
        other.data.start_ms > segment.start_ms ||
        (other.data.start_ms === segment.start_ms && other.id > segment.id);
      if (!later) {
        break;
      }
      before = node;
    }
    this.list.insertBefore(copy, before);
    view.render(segment, this);
  }
}

function conflictPanel(): HTMLElement | null {
  const template = document.getElementById("segment-template") as HTMLTemplateElement | null;
  const panel = template?.content.querySelector("[data-conflict]")?.cloneNode(true);
  return panel instanceof HTMLElement ? panel : null;
}

function startEditor(): void {
  const root = document.querySelector<HTMLElement>("[data-transcript]");
  if (root === null) {
    return;
  }
  new Editor(root).start();
}

document.addEventListener("DOMContentLoaded", startEditor);
