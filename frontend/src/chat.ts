// The chat client (/chat/): conversation list, message view, thread pane, composer.
//
// Everything it shows comes from the JSON API under /api/chat/ (yakuba/chat/api*.py) and
// the live events of the core WebSocket; the page (chat/home.html) only gives the shell,
// the first conversation list and the UI texts (json_script "chat-boot", never inline
// scripts: the CSP refuses them).  Message bodies are the server's "html" (rendered and
// escaped there); this script never builds HTML from a message's text.
//
// Order and resume.  Each conversation has a change seq (yakuba/chat/models.py): a live
// {"op": "message", seq} that is not the next one, a {"op": "live_gap"} frame and every
// (re)connect make the client ask changes?after=<highest seq it applied>, so nothing is
// lost or shown twice (messages are keyed by id and replaced by newer states).
//
// Sending.  Every send carries a client_key (crypto.randomUUID) that stays with the text
// until the server acknowledges it: pressing Enter again after a failure reuses it, so a
// send whose answer was lost never makes a second message.  Enter during IME composition
// (Japanese kana-kanji conversion) never sends.
//
// The socket.  realtime.ts keeps the one socket of the tab; this page listens to its
// document events (yakuba:live, yakuba:live-gap, yakuba:ready, yakuba:event,
// yakuba:refetch, yakuba:frame) and sends typing, activity and presence watching
// through yakuba:send (PageSocket).

type Json = { [key: string]: unknown };

interface Attachment {
  id: number;
  name: string;
  size: number;
  content_type: string;
  has_thumbnail: boolean;
  scan: string;
}

interface Reaction {
  emoji: string;
  users: number[];
}

interface Message {
  id: number;
  conversation: number;
  seq: number;
  changed_seq: number;
  kind: string;
  sender: number | null;
  sender_name: string;
  client_key: string | null;
  text: string;
  html: string;
  thread_root: number | null;
  reply_count: number;
  last_reply_seq: number;
  mentions: number[];
  mentions_channel: boolean;
  forwarded_from: number | null;
  created_at: string;
  edited: boolean;
  deleted: boolean;
  pinned: boolean;
  reactions: Reaction[];
  attachments: Attachment[];
  read_count?: number;
}

interface ConversationInfo {
  id: number;
  kind: string;
  name: string;
  unread?: number;
  mentions_unread?: number;
  first_unread_seq?: number | null;
  last_seq?: number;
  last_read_seq?: number;
  read_receipts?: boolean;
  archived?: boolean;
  other_user?: number | null;
  members?: number;
}

interface Strings {
  [key: string]: string;
}

interface Boot {
  user: number;
  user_name: string;
  api: string;
  search_url: string;
  page_url: string;
  conversations: ConversationInfo[];
  open: number | null;
  focus_message: number | null;
  focus_thread: boolean;
  eras: { name: string; start: string; first_year: number }[];
  date_style: string;
  idle_minutes: number;
  statuses: { value: string; label: string }[];
  strings: Strings;
}

interface Answer {
  status: number;
  data: Json;
}

const TYPING_SEND_MS = 3000;
const TYPING_SHOW_MS = 6000;
const READ_DEBOUNCE_MS = 400;
const PAGE_SIZE = 50;
const REACTIONS = ["👍", "✅", "🙏", "😊", "🎉", "👀"];

let boot: Boot;
let t: Strings;

// --- helpers ---------------------------------------------------------------------------

function text(key: string, values: { [name: string]: string | number } = {}): string {
  let result = t[key] ?? key;
  for (const [name, value] of Object.entries(values)) {
    result = result.split(`{${name}}`).join(String(value));
  }
  return result;
}

function chatCsrfToken(): string {
  try {
    const headers = JSON.parse(document.body.getAttribute("hx-headers") ?? "{}") as Strings;
    if (headers["X-CSRFToken"]) {
      return headers["X-CSRFToken"];
    }
  } catch {
    // fall through to the cookie
  }
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function api(method: string, path: string, body?: object | FormData): Promise<Answer> {
  const headers: Strings = { Accept: "application/json" };
  if (method !== "GET") {
    headers["X-CSRFToken"] = chatCsrfToken();
  }
  let payload: BodyInit | undefined;
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  try {
    const response = await fetch(boot.api + path, {
      method,
      credentials: "same-origin",
      headers,
      body: payload,
    });
    let data: Json = {};
    try {
      data = (await response.json()) as Json;
    } catch {
      // not JSON (a proxy's error page): the status says enough
    }
    return { status: response.status, data };
  } catch {
    return { status: 0, data: {} };
  }
}

function ok(answer: Answer): boolean {
  return answer.status >= 200 && answer.status < 300;
}

/** The Japanese (or English, by the page's language) message of an API error. */
function errorText(answer: Answer): string {
  if (answer.status === 0) {
    return text("network_error");
  }
  const error = answer.data.error as Json | undefined;
  if (error && typeof error === "object") {
    const english = document.documentElement.lang.startsWith("en");
    const message = (english ? error.message_en : error.message) ?? error.message;
    if (typeof message === "string" && message !== "") {
      return message;
    }
  }
  return text("server_error");
}

function errorCode(answer: Answer): string {
  const error = answer.data.error as Json | undefined;
  return error && typeof error.code === "string" ? error.code : "";
}

/** A list out of an answer that is either a list or an object holding one. */
function listOf<T>(data: unknown, key: string): T[] {
  if (Array.isArray(data)) {
    return data as T[];
  }
  if (data && typeof data === "object") {
    const inner = (data as Json)[key];
    if (Array.isArray(inner)) {
      return inner as T[];
    }
  }
  return [];
}

function messageOf(data: Json): Message | null {
  if (typeof data.id === "number" && typeof data.seq === "number") {
    return data as unknown as Message;
  }
  const inner = data.message as Json | undefined;
  return inner && typeof inner.id === "number" ? (inner as unknown as Message) : null;
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: { [name: string]: string } = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") {
      node.className = value;
    } else {
      node.setAttribute(name, value);
    }
  }
  node.append(...children);
  return node;
}

function button(label: string, attrs: { [name: string]: string } = {}): HTMLButtonElement {
  return el("button", { type: "button", ...attrs }, label);
}

function newKey(): string {
  if (typeof crypto !== "undefined" && "randomUUID" in crypto) {
    return crypto.randomUUID();
  }
  return `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

/** Before ``container`` is rebuilt: a function that puts the focus (and a text box's
 * caret) back on the same control of the same message afterwards. */
function keepFocus(container: HTMLElement): () => void {
  const active = document.activeElement as HTMLElement | null;
  if (active === null || !container.contains(active)) {
    return () => undefined;
  }
  const id = (active.closest("[data-message]") as HTMLElement | null)?.dataset.message;
  const action = active.dataset.action;
  const caret = active instanceof HTMLTextAreaElement ? [active.selectionStart, active.selectionEnd] : null;
  return () => {
    if (id === undefined) {
      return;
    }
    const again = container.querySelector<HTMLElement>(
      `[data-message="${id}"] ${action ? `[data-action="${action}"]` : ""}`,
    );
    again?.focus({ preventScroll: true });
    if (caret && again instanceof HTMLTextAreaElement) {
      again.setSelectionRange(caret[0], caret[1]);
    }
  };
}

// --- dates (Asia/Tokyo; 和暦 like yakuba/lib/wareki.py) ---------------------------------

const TOKYO_OFFSET_MS = 9 * 3600 * 1000;
const WEEKDAYS = "日月火水木金土";

function tokyoParts(iso: string): { y: number; m: number; d: number; wd: number; hm: string } {
  const shifted = new Date(new Date(iso).getTime() + TOKYO_OFFSET_MS);
  const hh = String(shifted.getUTCHours()).padStart(2, "0");
  const mm = String(shifted.getUTCMinutes()).padStart(2, "0");
  return {
    y: shifted.getUTCFullYear(),
    m: shifted.getUTCMonth() + 1,
    d: shifted.getUTCDate(),
    wd: shifted.getUTCDay(),
    hm: `${hh}:${mm}`,
  };
}

function dayKey(iso: string): string {
  const p = tokyoParts(iso);
  return `${p.y}-${p.m}-${p.d}`;
}

function dayLabel(iso: string): string {
  const p = tokyoParts(iso);
  const weekday = `(${WEEKDAYS[p.wd]})`;
  const western = `${p.y}年${p.m}月${p.d}日`;
  if (boot.date_style !== "wareki") {
    return western + weekday;
  }
  const stamp = `${p.y}-${String(p.m).padStart(2, "0")}-${String(p.d).padStart(2, "0")}`;
  const era = boot.eras.find((e) => stamp >= e.start);
  if (era === undefined) {
    return western + weekday;
  }
  const year = p.y - era.first_year + 1;
  return `${era.name}${year === 1 ? "元" : year}年${p.m}月${p.d}日${weekday}`;
}

function timeLabel(iso: string): string {
  return tokyoParts(iso).hm;
}

function fullTimeLabel(iso: string): string {
  return `${dayLabel(iso)} ${timeLabel(iso)}`;
}

// --- the socket ------------------------------------------------------------------------

/** The page's side of realtime.ts's one socket per tab: frames go out through the
 * ``yakuba:send`` document event (dropped while the socket is not ready: the client
 * re-sends its state on ``yakuba:ready``), and what comes in arrives as document events. */
class PageSocket {
  constructor(private readonly client: ChatClient) {}

  start(): void {
    const chat = document.getElementById("chat");
    document.addEventListener("yakuba:ready", () => {
      chat?.setAttribute("data-socket", "ready");
      this.client.onReady();
    });
    document.addEventListener("yakuba:live", (event: Event) => {
      const detail = (event as CustomEvent<{ event?: Json }>).detail;
      if (detail?.event && typeof detail.event === "object") {
        this.client.onLive(detail.event);
      }
    });
    document.addEventListener("yakuba:frame", (event: Event) => {
      const frame = (event as CustomEvent<{ frame?: Json }>).detail?.frame;
      if (frame?.op === "chat.presence_watching") {
        this.client.onLive({ type: "chat", op: "presence", changes: frame.presence });
      }
    });
    document.addEventListener("yakuba:live-gap", () => this.client.resyncAll());
    document.addEventListener("yakuba:refetch", () => this.client.resyncAll());
    document.addEventListener("yakuba:event", (event: Event) => {
      const detail = (event as CustomEvent<{ event?: Json }>).detail;
      if (detail?.event && typeof detail.event === "object") {
        this.client.onStreamEvent(detail.event);
      }
    });
    if (document.body.dataset.realtimeState === "ready") {
      // realtime.ts was ready before this page listened (it starts first).
      chat?.setAttribute("data-socket", "ready");
      this.client.onReady();
    }
  }

  /** Send a frame now if the socket is ready; false when it was dropped. */
  send(frame: object): boolean {
    const detail: { frame: object; sent?: boolean } = { frame };
    document.dispatchEvent(new CustomEvent("yakuba:send", { detail }));
    return detail.sent === true;
  }
}

// --- one conversation's state ----------------------------------------------------------

class ConversationState {
  messages = new Map<number, Message>();
  // The highest change seq applied: changes?after= asks from here.
  applied = 0;
  oldestSeq: number | null = null;
  hasOlder = true;
  loaded = false;
  syncing: Promise<void> | null = null;
  resyncAgain = false;
  // The first unread seq when the conversation was opened (for 「ここから未読」).
  markerSeq: number | null = null;
  // Read pointers of other members learnt from live "read" events (user id -> seq).
  reads = new Map<number, number>();
  countsTimer: number | null = null;
  readCounts = new Map<number, number>();
  typing = new Map<number, { name: string; thread: number | null; until: number }>();

  constructor(public info: ConversationInfo) {}
}

// --- a composer (main and thread) ------------------------------------------------------

class Composer {
  readonly box: HTMLTextAreaElement;
  readonly error: HTMLElement;
  readonly files: HTMLElement;
  composing = false;
  pending: Attachment[] = [];
  // The key of the text now in the box, kept until the server acknowledges it.
  private key: string | null = null;
  private keyFor = "";
  private sending = false;
  private lastTyping = 0;

  constructor(
    readonly form: HTMLFormElement,
    private readonly client: ChatClient,
    private readonly threadRoot: () => number | null,
  ) {
    this.box = form.querySelector<HTMLTextAreaElement>("textarea")!;
    this.error = form.querySelector<HTMLElement>("[data-error]")!;
    this.files = form.querySelector<HTMLElement>("[data-files]")!;
    const fileInput = form.querySelector<HTMLInputElement>("input[type=file]")!;
    form.querySelector("[data-attach]")?.addEventListener("click", () => fileInput.click());
    fileInput.addEventListener("change", () => {
      void this.upload(Array.from(fileInput.files ?? []));
      fileInput.value = "";
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.send();
    });
    this.box.addEventListener("compositionstart", () => {
      this.composing = true;
    });
    this.box.addEventListener("compositionend", () => {
      // keydown of the Enter that ends a composition comes before compositionend in
      // some browsers and after it in others: keyCode 229 / isComposing cover both.
      this.composing = false;
    });
    this.box.addEventListener("keydown", (event) => this.keydown(event));
    this.box.addEventListener("input", () => this.typed());
    // Files dropped anywhere on the composer (the box's events bubble up to it).
    form.addEventListener("dragover", (event) => {
      event.preventDefault();
      form.classList.add("chat-drop");
    });
    form.addEventListener("dragleave", () => form.classList.remove("chat-drop"));
    form.addEventListener("drop", (event) => {
      const dropped = event.dataTransfer?.files;
      form.classList.remove("chat-drop");
      if (dropped && dropped.length > 0) {
        event.preventDefault();
        void this.upload(Array.from(dropped));
      }
    });
  }

  private keydown(event: KeyboardEvent): void {
    if (event.key !== "Enter") {
      return;
    }
    if (event.isComposing || this.composing || event.keyCode === 229) {
      return; // the Enter confirms the kana-kanji conversion
    }
    if (event.shiftKey || event.altKey) {
      return; // a new line
    }
    event.preventDefault();
    void this.send();
  }

  private typed(): void {
    this.showError("");
    const now = Date.now();
    if (this.box.value.trim() !== "" && now - this.lastTyping > TYPING_SEND_MS) {
      this.lastTyping = now;
      this.client.sendTyping(this.threadRoot());
    }
  }

  showError(message: string): void {
    this.error.textContent = message;
    this.error.hidden = message === "";
    this.box.setAttribute("aria-invalid", message === "" ? "false" : "true");
  }

  private keyForContent(): string {
    const content = JSON.stringify([this.box.value, this.pending.map((a) => a.id)]);
    if (this.key === null || this.keyFor !== content) {
      this.key = newKey();
      this.keyFor = content;
    }
    return this.key;
  }

  async send(confirm = false): Promise<void> {
    const conversation = this.client.current;
    if (conversation === null || this.sending) {
      return;
    }
    const value = this.box.value;
    if (value.trim() === "" && this.pending.length === 0) {
      return;
    }
    const key = this.keyForContent();
    this.sending = true;
    this.form.setAttribute("aria-busy", "true");
    const answer = await api("POST", `conversations/${conversation}/messages`, {
      text: value,
      client_key: key,
      thread_root: this.threadRoot(),
      attachments: this.pending.map((a) => a.id),
      confirm_mentions: confirm,
    });
    this.sending = false;
    this.form.removeAttribute("aria-busy");
    if (ok(answer)) {
      const message = messageOf(answer.data);
      // Cleared only if nothing was typed meanwhile.
      if (this.box.value === value) {
        this.box.value = "";
      }
      this.pending = [];
      this.renderFiles();
      this.key = null;
      this.showError("");
      if (message) {
        this.client.applyMessage(message, { own: true });
      }
      return;
    }
    if (answer.status === 409 && errorCode(answer) === "confirm_mentions") {
      if (await this.client.dialogs.confirm(errorText(answer), text("send_anyway"))) {
        await this.send(true);
      } else {
        this.box.focus();
      }
      return;
    }
    // The text, its files and its key stay: Enter sends the same message again.
    this.showError(`${errorText(answer)} ${text("send_kept")}`);
  }

  async upload(files: File[]): Promise<void> {
    const conversation = this.client.current;
    if (conversation === null) {
      return;
    }
    for (const file of files) {
      const form = new FormData();
      form.append("file", file, file.name);
      this.showError(text("uploading", { name: file.name }));
      const answer = await api("POST", `conversations/${conversation}/attachments`, form);
      if (!ok(answer)) {
        this.showError(`${file.name}: ${errorText(answer)}`);
        return;
      }
      const attachment = answer.data as unknown as Attachment;
      this.pending.push(attachment);
      this.renderFiles();
    }
    this.showError("");
  }

  renderFiles(): void {
    this.files.replaceChildren(
      ...this.pending.map((file) => {
        const remove = button("×", {
          class: "chat-chip-remove",
          "aria-label": text("remove_file", { name: file.name }),
        });
        remove.addEventListener("click", () => {
          this.pending = this.pending.filter((a) => a.id !== file.id);
          this.renderFiles();
          this.box.focus();
        });
        return el("li", { class: "chat-chip" }, file.name, remove);
      }),
    );
  }
}

// --- dialogs ---------------------------------------------------------------------------

class Dialogs {
  private readonly confirmBox = document.getElementById("chat-confirm") as HTMLDialogElement;
  private readonly readersBox = document.getElementById("chat-readers") as HTMLDialogElement;
  private readonly forwardBox = document.getElementById("chat-forward") as HTMLDialogElement;
  private readonly pinsBox = document.getElementById("chat-pins") as HTMLDialogElement;

  constructor() {
    for (const dialog of [this.confirmBox, this.readersBox, this.forwardBox, this.pinsBox]) {
      dialog.querySelectorAll("[data-close]").forEach((b) =>
        b.addEventListener("click", () => dialog.close("cancel")),
      );
    }
  }

  private open(dialog: HTMLDialogElement): Promise<string> {
    const opener = document.activeElement as HTMLElement | null;
    return new Promise((resolve) => {
      dialog.addEventListener(
        "close",
        () => {
          opener?.focus();
          resolve(dialog.returnValue);
        },
        { once: true },
      );
      dialog.returnValue = "";
      dialog.showModal(); // Escape closes it ("cancel")
    });
  }

  async confirm(message: string, yes: string): Promise<boolean> {
    this.confirmBox.querySelector("[data-text]")!.textContent = message;
    this.confirmBox.querySelector("[data-yes]")!.textContent = yes;
    return (await this.open(this.confirmBox)) === "yes";
  }

  async readers(rows: { name: string; at: string }[]): Promise<void> {
    const list = this.readersBox.querySelector("[data-list]")!;
    list.replaceChildren(
      ...(rows.length === 0
        ? [el("li", {}, text("no_readers"))]
        : rows.map((row) =>
            el(
              "li",
              {},
              el("span", { class: "chat-reader-name" }, row.name),
              " ",
              el("time", { datetime: row.at }, row.at ? fullTimeLabel(row.at) : ""),
            ),
          )),
    );
    await this.open(this.readersBox);
  }

  /** The pinned messages; resolves with the one chosen to be shown, or null. */
  async pins(messages: Message[]): Promise<number | null> {
    let chosen: number | null = null;
    const list = this.pinsBox.querySelector("[data-list]")!;
    list.replaceChildren(
      ...(messages.length === 0
        ? [el("li", {}, text("no_pins"))]
        : messages.map((message) => {
            const show = button(`${message.sender_name} ${fullTimeLabel(message.created_at)}`, {
              class: "link-like",
            });
            show.addEventListener("click", () => {
              chosen = message.id;
              this.pinsBox.close("show");
            });
            // Plain text (textContent), never the text as HTML.
            return el("li", {}, show, el("p", { class: "chat-pin-text" }, message.text.slice(0, 200)));
          })),
    );
    await this.open(this.pinsBox);
    return chosen;
  }

  async forward(choices: ConversationInfo[]): Promise<number | null> {
    const select = this.forwardBox.querySelector("select")!;
    select.replaceChildren(...choices.map((c) => el("option", { value: String(c.id) }, c.name)));
    const answer = await this.open(this.forwardBox);
    return answer === "yes" ? Number(select.value) : null;
  }
}

// --- starting conversations, finding channels, settings --------------------------------

interface Person {
  id: number;
  username: string;
  name: string;
  detail: string;
  kind: string;
}

/** JSON from the chat page itself (?people=… / ?channels=1): the pickers' look-ups. */
async function pageJson(query: string): Promise<Json[]> {
  try {
    const response = await fetch(`${boot.page_url}?${query}`, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (!response.ok) {
      return [];
    }
    return listOf<Json>(await response.json(), "items");
  } catch {
    return [];
  }
}

/** Show a modal dialog; Escape or a [data-close] button closes it and the focus goes
 * back to what opened it.  Closed with "done" (it did its work and put the focus
 * elsewhere, e.g. into the new conversation's box), the focus stays where it is. */
function showDialog(dialog: HTMLDialogElement): void {
  const opener = document.activeElement as HTMLElement | null;
  dialog.addEventListener(
    "close",
    () => {
      if (dialog.returnValue !== "done") {
        opener?.focus();
      }
    },
    { once: true },
  );
  dialog.returnValue = "";
  dialog.showModal();
}

function dialogError(dialog: HTMLElement, message: string): void {
  const box = dialog.querySelector<HTMLElement>("[data-dialog-error]");
  if (box) {
    box.textContent = message;
    box.hidden = message === "";
  }
}

/** A name search that picks staff (and guests, where they may be invited). */
class PeoplePicker {
  chosen: Person[] = [];
  guests = false;
  single = false;
  limit = 49;
  onPick: ((person: Person) => void) | null = null;
  readonly query: HTMLInputElement;
  private readonly results: HTMLElement;
  private readonly chosenList: HTMLElement | null;
  private timer: number | null = null;
  private asked = 0;

  constructor(box: HTMLElement) {
    this.query = box.querySelector<HTMLInputElement>("[data-people-query]")!;
    this.results = box.querySelector<HTMLElement>("[data-people-results]")!;
    this.chosenList = box.querySelector<HTMLElement>("[data-people-chosen]");
    this.query.addEventListener("input", () => {
      if (this.timer !== null) {
        window.clearTimeout(this.timer);
      }
      this.timer = window.setTimeout(() => void this.search(), 250);
    });
    this.query.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault(); // Enter in the search box searches; it never submits
        void this.search();
      } else if (event.key === "ArrowDown") {
        event.preventDefault();
        this.results.querySelector<HTMLButtonElement>("button")?.focus();
      }
    });
  }

  reset(): void {
    this.chosen = [];
    this.query.value = "";
    this.results.replaceChildren();
    this.renderChosen();
  }

  async search(): Promise<void> {
    const wanted = this.query.value.trim();
    const asked = ++this.asked;
    if (wanted === "") {
      this.results.replaceChildren();
      return;
    }
    const items = (await pageJson(
      `people=${encodeURIComponent(wanted)}${this.guests ? "&guests=1" : ""}`,
    )) as unknown as Person[];
    if (asked !== this.asked) {
      return; // a later search is on its way
    }
    const shown = items.filter((p) => !this.chosen.some((c) => c.id === p.id));
    this.results.replaceChildren(
      ...(shown.length === 0
        ? [el("li", { class: "chat-none" }, text("no_people"))]
        : shown.map((person) => {
            const pick = button(person.detail ? `${person.name}（${person.detail}）` : person.name, {
              class: "secondary",
              "data-person": person.username,
            });
            pick.addEventListener("click", () => this.pick(person));
            return el("li", {}, pick);
          })),
    );
  }

  private pick(person: Person): void {
    this.results.replaceChildren();
    this.query.value = "";
    if (this.onPick) {
      this.onPick(person);
      this.query.focus();
      return;
    }
    if (this.single) {
      this.chosen = [person];
    } else if (!this.chosen.some((c) => c.id === person.id) && this.chosen.length < this.limit) {
      this.chosen.push(person);
    }
    this.renderChosen();
    this.query.focus();
  }

  renderChosen(): void {
    this.chosenList?.replaceChildren(
      ...this.chosen.map((person) => {
        const remove = button("×", {
          class: "chat-chip-remove",
          "aria-label": text("remove_person", { name: person.name }),
        });
        remove.addEventListener("click", () => {
          this.chosen = this.chosen.filter((c) => c.id !== person.id);
          this.renderChosen();
          this.query.focus();
        });
        return el("li", { class: "chat-chip", "data-chosen": person.username }, person.name, remove);
      }),
    );
  }
}

class ConversationForms {
  private readonly newBox = document.getElementById("chat-new") as HTMLDialogElement;
  private readonly newForm: HTMLFormElement;
  private readonly newPicker: PeoplePicker;
  private readonly browseBox = document.getElementById("chat-browse") as HTMLDialogElement;
  private readonly settingsBox = document.getElementById("chat-settings") as HTMLDialogElement;
  private readonly memberPicker: PeoplePicker;
  private settingsFor: number | null = null;
  private detail: Json = {};

  constructor(private readonly client: ChatClient) {
    for (const dialog of [this.newBox, this.browseBox, this.settingsBox]) {
      dialog.querySelectorAll("[data-close]").forEach((b) =>
        b.addEventListener("click", () => dialog.close("cancel")),
      );
    }
    this.newForm = this.newBox.querySelector<HTMLFormElement>("[data-new-form]")!;
    this.newPicker = new PeoplePicker(this.newBox.querySelector<HTMLElement>("[data-picker]")!);
    this.newForm.querySelectorAll<HTMLInputElement>("input[name=kind]").forEach((radio) =>
      radio.addEventListener("change", () => this.kindChanged()),
    );
    this.newForm.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.create();
    });
    this.memberPicker = new PeoplePicker(this.settingsBox.querySelector<HTMLElement>("[data-picker]")!);
    this.memberPicker.onPick = (person) => void this.addMember(person);
    this.settingsBox.querySelector<HTMLFormElement>("[data-notify-form]")!.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.saveNotify();
    });
    this.settingsBox.querySelector<HTMLFormElement>("[data-info-form]")!.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.saveInfo();
    });
    this.settingsBox.querySelector("[data-archive]")!.addEventListener("click", () => void this.archive());
    this.settingsBox.querySelector("[data-leave]")!.addEventListener("click", () => void this.leave());
  }

  // --- 新しい会話 ---

  openNew(): void {
    this.newForm.reset();
    this.newPicker.reset();
    dialogError(this.newBox, "");
    this.kindChanged();
    showDialog(this.newBox);
    this.newForm.querySelector<HTMLInputElement>("input[name=kind]:checked")?.focus();
  }

  private kind(): string {
    return this.newForm.querySelector<HTMLInputElement>("input[name=kind]:checked")?.value ?? "direct";
  }

  private kindChanged(): void {
    const kind = this.kind();
    this.newForm.querySelectorAll<HTMLElement>("[data-for]").forEach((part) => {
      part.hidden = !(part.dataset.for ?? "").split(" ").includes(kind);
    });
    this.newForm.querySelector("[data-name-label]")!.textContent =
      kind === "project" ? text("name_required") : text("name_optional");
    this.newForm.querySelector("[data-people-label]")!.textContent =
      text(kind === "direct" ? "people_direct" : kind === "group" ? "people_many" : "people_project");
    this.newPicker.single = kind === "direct";
    this.newPicker.guests = kind === "project";
    if (kind === "direct" && this.newPicker.chosen.length > 1) {
      this.newPicker.chosen = this.newPicker.chosen.slice(0, 1);
    }
    if (kind !== "project") {
      this.newPicker.chosen = this.newPicker.chosen.filter((p) => p.kind !== "guest");
    }
    this.newPicker.renderChosen();
  }

  private async create(): Promise<void> {
    const kind = this.kind();
    const data = new FormData(this.newForm);
    const name = String(data.get("name") ?? "").trim();
    const members = this.newPicker.chosen.map((p) => p.username);
    if (kind === "direct" && members.length !== 1) {
      dialogError(this.newBox, text("pick_one"));
      this.newPicker.query.focus();
      return;
    }
    if (kind === "group" && (members.length < 1 || members.length > 49)) {
      dialogError(this.newBox, text("pick_group"));
      this.newPicker.query.focus();
      return;
    }
    if (kind === "project" && name === "") {
      dialogError(this.newBox, text("name_needed"));
      this.newForm.querySelector<HTMLInputElement>("input[name=name]")!.focus();
      return;
    }
    const answer = await api("POST", "conversations", {
      kind,
      name: kind === "direct" ? "" : name,
      description: kind === "project" ? String(data.get("description") ?? "") : "",
      is_private: kind === "project" && data.get("is_private") !== null,
      members,
    });
    if (!ok(answer)) {
      dialogError(this.newBox, errorText(answer));
      return;
    }
    const id = Number(answer.data.id);
    await this.client.refreshList();
    this.newBox.close("done");
    await this.client.open(id);
    this.client.composer.box.focus();
  }

  // --- チャンネルを探す ---

  async openBrowse(): Promise<void> {
    dialogError(this.browseBox, "");
    const list = this.browseBox.querySelector<HTMLElement>("[data-list]")!;
    list.replaceChildren(el("li", {}, text("loading")));
    showDialog(this.browseBox);
    const channels = await pageJson("channels=1");
    list.replaceChildren(
      ...(channels.length === 0
        ? [el("li", { class: "chat-none" }, text("no_channels"))]
        : channels.map((channel) => {
            const name = String(channel.name ?? "");
            const join = button(text("join"), { "aria-label": `${name} ${text("join")}`, "data-join": String(channel.id) });
            join.addEventListener("click", () => void this.join(Number(channel.id), name));
            return el(
              "li",
              {},
              el("span", { class: "chat-browse-name" }, name),
              " ",
              el("span", { class: "chat-help" }, text("members_n", { n: Number(channel.members ?? 0) })),
              el("p", { class: "chat-help" }, String(channel.description ?? "")),
              join,
            );
          })),
    );
    list.querySelector<HTMLButtonElement>("button")?.focus();
  }

  private async join(id: number, name: string): Promise<void> {
    const answer = await api("POST", `conversations/${id}/join`);
    if (!ok(answer)) {
      dialogError(this.browseBox, errorText(answer));
      return;
    }
    await this.client.refreshList();
    this.browseBox.close("done");
    await this.client.open(id);
    this.client.announce(text("joined", { name }));
    this.client.composer.box.focus();
  }

  // --- 会話の設定 ---

  async openSettings(id: number): Promise<void> {
    this.settingsFor = id;
    dialogError(this.settingsBox, "");
    this.status("");
    this.memberPicker.reset();
    await this.loadSettings();
    showDialog(this.settingsBox);
    this.settingsBox.querySelector<HTMLInputElement>("input[name=notify]:checked")?.focus();
  }

  private status(message: string): void {
    this.settingsBox.querySelector("[data-dialog-status]")!.textContent = message;
  }

  private async loadSettings(): Promise<void> {
    const id = this.settingsFor;
    if (id === null) {
      return;
    }
    const [detail, members] = await Promise.all([
      api("GET", `conversations/${id}`),
      api("GET", `conversations/${id}/members`),
    ]);
    if (!ok(detail)) {
      dialogError(this.settingsBox, errorText(detail));
      return;
    }
    this.detail = detail.data;
    const kind = String(detail.data.kind);
    const canManage = detail.data.can_manage === true;
    const mine = (detail.data.membership ?? null) as Json | null;
    const shared = kind === "project" || kind === "group";
    const box = this.settingsBox;
    box.querySelector("h2")!.textContent = `${text("settings_of", { name: String(detail.data.name ?? "") })}`;

    const notifyForm = box.querySelector<HTMLFormElement>("[data-notify-form]")!;
    notifyForm.hidden = mine === null;
    if (mine !== null) {
      notifyForm.querySelectorAll<HTMLInputElement>("input[name=notify]").forEach((radio) => {
        radio.checked = radio.value === mine.notify;
      });
      notifyForm.querySelector<HTMLInputElement>("input[name=muted]")!.checked = mine.muted === true;
    }

    const infoForm = box.querySelector<HTMLFormElement>("[data-info-form]")!;
    infoForm.hidden = !(canManage && kind !== "direct" && kind !== "notices");
    (infoForm.elements.namedItem("name") as HTMLInputElement).value = String(detail.data.name ?? "");
    (infoForm.elements.namedItem("description") as HTMLTextAreaElement).value = String(detail.data.description ?? "");
    (infoForm.elements.namedItem("read_receipts") as HTMLInputElement).checked = detail.data.read_receipts === true;

    const section = box.querySelector<HTMLElement>("[data-members-section]")!;
    section.hidden = kind === "notices";
    const picker = section.querySelector<HTMLElement>("[data-picker]")!;
    picker.hidden = !shared || detail.data.archived === true;
    this.memberPicker.guests = kind === "project";
    const rows = listOf<Json>(members.data, "members");
    section.querySelector("[data-members]")!.replaceChildren(
      ...rows.map((row) => {
        const name = String(row.name ?? "");
        const item = el("li", { "data-member": String(row.username ?? "") }, el("span", {}, name));
        if (row.kind === "guest") {
          item.append(" ", el("span", { class: "chat-tag" }, text("guest")));
        }
        if (row.role === "owner") {
          item.append(" ", el("span", { class: "chat-tag" }, text("owner")));
        }
        if (canManage && shared && Number(row.id) !== boot.user && detail.data.archived !== true) {
          const remove = button(text("remove_person", { name }), { class: "secondary chat-small" });
          remove.addEventListener("click", () => void this.removeMember(Number(row.id), name));
          item.append(" ", remove);
        }
        return item;
      }),
    );

    const archive = box.querySelector<HTMLButtonElement>("[data-archive]")!;
    archive.hidden = !(canManage && shared);
    archive.textContent = detail.data.archived === true ? text("unarchive") : text("archive");
    box.querySelector<HTMLButtonElement>("[data-leave]")!.hidden = !(shared && mine !== null);
  }

  private async saveNotify(): Promise<void> {
    const form = this.settingsBox.querySelector<HTMLFormElement>("[data-notify-form]")!;
    const notify = form.querySelector<HTMLInputElement>("input[name=notify]:checked")?.value ?? null;
    const muted = form.querySelector<HTMLInputElement>("input[name=muted]")!.checked;
    this.status("");
    const answer = await api("PUT", `conversations/${this.settingsFor}/notify`, { notify, muted });
    this.done(answer);
  }

  private async saveInfo(): Promise<void> {
    const form = this.settingsBox.querySelector<HTMLFormElement>("[data-info-form]")!;
    this.status("");
    const answer = await api("PATCH", `conversations/${this.settingsFor}`, {
      name: (form.elements.namedItem("name") as HTMLInputElement).value,
      description: (form.elements.namedItem("description") as HTMLTextAreaElement).value,
      read_receipts: (form.elements.namedItem("read_receipts") as HTMLInputElement).checked,
    });
    this.done(answer);
  }

  private async addMember(person: Person): Promise<void> {
    const answer = await api("POST", `conversations/${this.settingsFor}/members`, { users: [person.username] });
    if (this.done(answer, text("added", { name: person.name }))) {
      await this.loadSettings();
    }
  }

  private async removeMember(user: number, name: string): Promise<void> {
    if (!(await this.client.dialogs.confirm(text("remove_member_confirm", { name }), text("delete")))) {
      return;
    }
    const answer = await api("DELETE", `conversations/${this.settingsFor}/members/${user}`);
    if (this.done(answer, text("removed", { name }))) {
      await this.loadSettings();
      this.settingsBox.querySelector<HTMLInputElement>("[data-people-query]")?.focus();
    }
  }

  private async archive(): Promise<void> {
    const archived = this.detail.archived === true;
    if (!archived && !(await this.client.dialogs.confirm(text("archive_confirm"), text("archive")))) {
      return;
    }
    const answer = await api("POST", `conversations/${this.settingsFor}/${archived ? "unarchive" : "archive"}`);
    if (this.done(answer)) {
      await this.loadSettings();
    }
  }

  private async leave(): Promise<void> {
    const id = this.settingsFor;
    if (id === null || !(await this.client.dialogs.confirm(text("leave_confirm"), text("leave")))) {
      return;
    }
    const answer = await api("POST", `conversations/${id}/leave`);
    if (!ok(answer)) {
      dialogError(this.settingsBox, errorText(answer));
      return;
    }
    const name = String(this.detail.name ?? "");
    this.settingsBox.close("done");
    await this.client.left(id);
    this.client.announce(text("left", { name }));
  }

  /** After a change: its message, or the API's refusal; true when it was done. */
  private done(answer: Answer, message = text("saved")): boolean {
    if (!ok(answer)) {
      dialogError(this.settingsBox, errorText(answer));
      this.status("");
      return false;
    }
    dialogError(this.settingsBox, "");
    this.status(message);
    void this.client.refreshList();
    return true;
  }
}

// --- the client ------------------------------------------------------------------------

class ChatClient {
  readonly root = document.getElementById("chat")!;
  readonly dialogs = new Dialogs();
  readonly forms: ConversationForms;
  readonly states = new Map<number, ConversationState>();
  current: number | null = null;
  thread: number | null = null;
  readonly socket = new PageSocket(this);
  private readonly list = this.root.querySelector<HTMLElement>("[data-messages]")!;
  private readonly threadPane = this.root.querySelector<HTMLElement>("[data-thread]")!;
  private readonly threadList = this.root.querySelector<HTMLElement>("[data-thread-messages]")!;
  private readonly title = this.root.querySelector<HTMLElement>("[data-title]")!;
  private readonly typingLine = this.root.querySelector<HTMLElement>("[data-typing]")!;
  private readonly announcer = this.root.querySelector<HTMLElement>("[data-announce]")!;
  readonly composer: Composer;
  readonly threadComposer: Composer;
  private observer: IntersectionObserver;
  private visibleSeqs = new Set<number>();
  private readTimer: number | null = null;
  private readonly presence = new Map<number, { status: string; message: string }>();
  private idle = false;
  private idleTimer: number | null = null;
  private loadingOlder = false;
  // The message a search result pointed at: kept highlighted across re-renders (a
  // resync after the socket comes up redraws the list).
  private focusedId: number | null = null;
  private readonly threadMessages = new Map<number, Message>();
  private editing: { id: number; draft: string; error: string } | null = null;
  private readonly drafts = new Map<number, string>();
  // Unread replies per thread root, and the root's last_reply_seq that count is for.
  private readonly threadUnread = new Map<number, number>();
  private readonly threadKnown = new Map<number, number>();
  private readonly threadQueue: number[] = [];
  private threadFetching = false;
  private readonly composerPlaceholder = this.root.querySelector<HTMLTextAreaElement>("#chat-box")!.placeholder;
  private readonly readonlyNote = this.root.querySelector<HTMLElement>("[data-readonly]")!;
  private readonly settingsButton = this.root.querySelector<HTMLButtonElement>("[data-settings]")!;

  constructor() {
    for (const info of boot.conversations) {
      this.states.set(info.id, new ConversationState(info));
    }
    this.composer = new Composer(
      this.root.querySelector<HTMLFormElement>("[data-composer]")!,
      this,
      () => null,
    );
    this.threadComposer = new Composer(
      this.root.querySelector<HTMLFormElement>("[data-thread-composer]")!,
      this,
      () => this.thread,
    );
    this.observer = new IntersectionObserver((entries) => this.seen(entries), {
      root: this.list,
      threshold: [0, 0.25, 0.5, 0.75, 1],
    });
    this.list.addEventListener("scroll", () => {
      if (this.list.scrollTop < 80) {
        void this.loadOlder();
      }
    });
    this.list.addEventListener("click", (event) => this.messageAction(event));
    this.threadList.addEventListener("click", (event) => this.messageAction(event));
    this.root.querySelector("[data-pins]")!.addEventListener("click", () => void this.showPins());
    this.forms = new ConversationForms(this);
    this.root.querySelector("[data-new]")!.addEventListener("click", () => this.forms.openNew());
    this.root.querySelector("[data-browse]")!.addEventListener("click", () => void this.forms.openBrowse());
    this.settingsButton.disabled = true;
    this.settingsButton.addEventListener("click", () => {
      if (this.current !== null) {
        void this.forms.openSettings(this.current);
      }
    });
    this.threadPane.querySelector("[data-thread-close]")!.addEventListener("click", () => {
      this.closeThread();
    });
    this.root.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.thread !== null && !document.querySelector("dialog[open]")) {
        this.closeThread();
      }
    });
    document.addEventListener("visibilitychange", () => this.flushVisible());
    window.addEventListener("focus", () => this.flushVisible());
    this.setUpPresence();
    this.setUpNotifications();
    this.renderList();
  }

  start(): void {
    this.socket.start();
    const wanted = boot.open ?? Number(window.location.hash.replace("#c", ""));
    const first = this.states.has(wanted) ? wanted : (boot.conversations[0]?.id ?? null);
    if (first !== null) {
      void this.open(first).then(() => {
        if (boot.focus_message !== null && first === boot.open) {
          const id = boot.focus_message;
          void this.focusMessage(first, id).then(() => {
            if (boot.focus_thread) {
              void this.openThread(id); // a reply: its thread, from its root
            }
          });
        }
      });
    }
    void this.refreshList();
  }

  // --- conversation list ---

  async refreshList(): Promise<void> {
    const answer = await api("GET", "conversations");
    if (!ok(answer)) {
      return;
    }
    const fresh = listOf<ConversationInfo>(answer.data, "conversations");
    const seen = new Set<number>();
    for (const info of fresh) {
      seen.add(info.id);
      const state = this.states.get(info.id);
      if (state) {
        state.info = { ...state.info, ...info };
      } else {
        this.states.set(info.id, new ConversationState(info));
      }
    }
    for (const id of Array.from(this.states.keys())) {
      if (!seen.has(id) && fresh.length > 0) {
        this.states.delete(id);
      }
    }
    const current = this.current === null ? undefined : this.states.get(this.current);
    if (current) {
      this.title.textContent = current.info.name; // renamed meanwhile
      this.showComposer(current);
    }
    this.renderList();
    void this.watchPresence();
  }

  announce(message: string): void {
    this.announcer.textContent = message;
  }

  /** The person left ``id``: forget it and show another conversation. */
  async left(id: number): Promise<void> {
    this.states.delete(id);
    if (this.current === id) {
      this.current = null;
    }
    await this.refreshList();
    const next = Array.from(this.states.values())[0];
    if (next) {
      await this.open(next.info.id);
    }
    this.root.querySelector<HTMLElement>("[data-new]")?.focus();
  }

  /** お知らせ are written by the system only: no composer; archived ones take nothing. */
  private showComposer(state: ConversationState): void {
    const notices = state.info.kind === "notices";
    this.composer.form.hidden = notices;
    this.readonlyNote.hidden = !notices;
    this.composer.box.disabled = state.info.archived === true;
    this.composer.box.placeholder = state.info.archived === true ? text("archived_note") : this.composerPlaceholder;
  }

  renderList(): void {
    const groups: { [kind: string]: HTMLElement } = {};
    this.root.querySelectorAll<HTMLElement>("[data-group]").forEach((ul) => {
      groups[ul.dataset.group!] = ul;
      ul.replaceChildren();
    });
    const sorted = Array.from(this.states.values()).sort((a, b) =>
      a.info.name.localeCompare(b.info.name, "ja"),
    );
    for (const state of sorted) {
      const info = state.info;
      const group = groups[info.kind === "group" ? "direct" : info.kind] ?? groups.project;
      if (group === undefined) {
        continue;
      }
      const link = el("a", { href: `#c${info.id}`, "data-conversation": String(info.id) });
      if (info.other_user) {
        const presence = this.presence.get(info.other_user);
        const status = presence?.status ?? "offline";
        link.append(
          el("span", {
            class: `chat-dot chat-dot-${status}`,
            "data-presence": String(info.other_user),
            role: "img",
            "aria-label": this.statusLabel(status),
          }),
        );
      }
      link.append(el("span", { class: "chat-conv-name" }, info.name));
      const unread = info.unread ?? 0;
      const mentions = info.mentions_unread ?? 0;
      if (mentions > 0) {
        link.append(
          el(
            "span",
            { class: "chat-badge chat-badge-mention" },
            el("span", { "aria-hidden": "true" }, `@${mentions}`),
            el("span", { class: "visually-hidden" }, text("mentions_n", { n: mentions })),
          ),
        );
      }
      if (unread > 0) {
        link.append(
          el(
            "span",
            { class: "chat-badge" },
            el("span", { "aria-hidden": "true" }, String(unread)),
            el("span", { class: "visually-hidden" }, text("unread_n", { n: unread })),
          ),
        );
      }
      if (info.id === this.current) {
        link.setAttribute("aria-current", "page");
      }
      link.addEventListener("click", (event) => {
        event.preventDefault();
        void this.open(info.id);
      });
      group.append(el("li", {}, link));
    }
    this.root.querySelectorAll<HTMLElement>("[data-group]").forEach((ul) => {
      const empty = ul.parentElement?.querySelector<HTMLElement>("[data-empty]");
      if (empty) {
        empty.hidden = ul.children.length > 0;
      }
    });
    const notices = this.root.querySelector<HTMLElement>("[data-group-box=notices]");
    if (notices) {
      notices.hidden = (groups.notices?.children.length ?? 0) === 0;
    }
  }

  statusLabel(status: string): string {
    return boot.statuses.find((s) => s.value === status)?.label ?? text("offline");
  }

  // --- opening and loading ---

  async open(id: number): Promise<void> {
    if (id !== this.current) {
      this.focusedId = null;
    }
    const state = this.states.get(id);
    if (state === undefined) {
      return;
    }
    if (this.current !== null && this.current !== id) {
      // Each conversation keeps its unsent text; files uploaded for one cannot go to another.
      this.drafts.set(this.current, this.composer.box.value);
      this.composer.box.value = this.drafts.get(id) ?? "";
      this.composer.pending = [];
      this.composer.renderFiles();
    }
    this.current = id;
    this.closeThread();
    this.visibleSeqs.clear();
    history.replaceState(null, "", `#c${id}`);
    this.title.textContent = state.info.name;
    this.root.setAttribute("data-current", String(id));
    this.settingsButton.disabled = false;
    this.showComposer(state);
    this.composer.showError("");
    this.renderList();
    if (!state.loaded) {
      this.list.replaceChildren(el("p", { class: "chat-loading" }, text("loading")));
      await this.loadLatest(state);
      // What changed while the page was on its way (before the socket may have been
      // ready) comes now; usually nothing.
      void this.resync(state);
    }
    if (this.current !== id) {
      return;
    }
    state.markerSeq = this.firstUnread(state);
    this.renderMessages(state, true);
    this.renderTyping();
  }

  private async loadLatest(state: ConversationState): Promise<void> {
    const head = Number(state.info.last_seq ?? 0); // known before the page was asked for
    const answer = await api("GET", `conversations/${state.info.id}/messages?limit=${PAGE_SIZE}`);
    if (!ok(answer)) {
      this.list.replaceChildren(el("p", { class: "error", role: "alert" }, errorText(answer)));
      return;
    }
    this.takePage(state, answer.data);
    if (!state.loaded) {
      // The page is the newest: what happened after it reached us live or comes by resync.
      state.applied = Math.max(state.applied, head);
    }
    state.loaded = true;
  }

  /** The seq of the first message not read yet (「ここから未読」), or null. */
  private firstUnread(state: ConversationState): number | null {
    const lastRead = Number(state.info.last_read_seq ?? 0);
    const first = Array.from(state.messages.values())
      .filter((m) => m.seq > lastRead && m.sender !== boot.user && !m.deleted)
      .sort((a, b) => a.seq - b.seq)[0];
    return first ? first.seq : null;
  }

  /** The messages of one page of history. */
  private takePage(state: ConversationState, data: Json): void {
    const messages = listOf<Message>(data, "items");
    for (const message of messages) {
      this.store(state, message);
    }
    const seqs = messages.map((m) => m.seq);
    if (seqs.length > 0) {
      const oldest = Math.min(...seqs);
      state.oldestSeq = state.oldestSeq === null ? oldest : Math.min(state.oldestSeq, oldest);
    }
    state.hasOlder = Boolean(data.more);
    state.applied = Math.max(state.applied, ...messages.map((m) => m.changed_seq));
  }

  private store(state: ConversationState, message: Message): void {
    if (message.thread_root !== null) {
      if (this.thread === message.thread_root) {
        this.threadMessages.set(message.id, message);
      }
      return;
    }
    const known = state.messages.get(message.id);
    if (known && known.changed_seq > message.changed_seq) {
      return; // an older state arrived late
    }
    state.messages.set(message.id, message);
    if (typeof message.read_count === "number") {
      state.readCounts.set(message.id, message.read_count);
    }
  }

  /** Show one message (a search result): load older pages until it is there. */
  async focusMessage(conversation: number, id: number): Promise<void> {
    this.focusedId = id;
    const state = this.states.get(conversation);
    for (let page = 0; state && !state.messages.has(id) && state.hasOlder && page < 40; page++) {
      await this.loadOlder();
    }
    const node = this.list.querySelector<HTMLElement>(`[data-message="${id}"]`);
    if (node) {
      node.classList.add("chat-focus");
      node.tabIndex = -1;
      node.scrollIntoView({ block: "center" });
      node.focus({ preventScroll: true });
    }
  }

  private async loadOlder(): Promise<void> {
    const state = this.current === null ? undefined : this.states.get(this.current);
    if (!state || !state.loaded || !state.hasOlder || this.loadingOlder || state.oldestSeq === null) {
      return;
    }
    this.loadingOlder = true;
    const id = state.info.id;
    const answer = await api("GET", `conversations/${id}/messages?before=${state.oldestSeq}&limit=${PAGE_SIZE}`);
    this.loadingOlder = false;
    if (!ok(answer) || this.current !== id) {
      return;
    }
    const before = this.list.scrollHeight - this.list.scrollTop;
    const count = state.messages.size;
    this.takePage(state, answer.data);
    if (state.messages.size === count) {
      state.hasOlder = false;
    }
    this.renderMessages(state, false);
    this.list.scrollTop = this.list.scrollHeight - before; // keep the reader's place
  }

  /** Ask for everything after what was applied (after a gap or a reconnect). */
  resync(state: ConversationState): Promise<void> {
    if (state.syncing) {
      state.resyncAgain = true;
      return state.syncing;
    }
    state.syncing = (async () => {
      do {
        state.resyncAgain = false;
        const answer = await api("GET", `conversations/${state.info.id}/changes?after=${state.applied}`);
        if (!ok(answer)) {
          break;
        }
        const messages = listOf<Message>(answer.data, "items");
        for (const message of messages) {
          this.applyMessage(message, { sync: true });
        }
        state.applied = Math.max(state.applied, Number(answer.data.head ?? 0));
        if (answer.data.more === true) {
          state.resyncAgain = true;
        }
      } while (state.resyncAgain);
      state.syncing = null;
      if (state.info.id === this.current) {
        this.renderMessages(state, false);
      }
    })();
    return state.syncing;
  }

  resyncAll(): void {
    for (const state of this.states.values()) {
      if (state.loaded) {
        void this.resync(state);
      }
    }
    if (this.thread !== null) {
      void this.loadThread(this.thread);
    }
    void this.refreshList();
  }

  onReady(): void {
    this.resyncAll();
    void this.watchPresence();
    this.sendActivity(this.idle);
  }

  // --- live events ---

  onStreamEvent(event: Json): void {
    if (event.type === "chat" && event.op === "conversation") {
      void this.refreshList();
    }
  }

  onLive(event: Json): void {
    if (!event || event.type !== "chat") {
      return;
    }
    switch (event.op) {
      case "message": {
        const state = this.states.get(Number(event.conversation));
        const message = event.message as Message;
        if (state === undefined) {
          void this.refreshList();
          return;
        }
        const seq = Number(event.seq);
        if (state.loaded && seq > state.applied + 1) {
          void this.resync(state); // a gap: fetch it, this one included
          return;
        }
        this.applyMessage(message, {});
        state.applied = Math.max(state.applied, seq);
        break;
      }
      case "read":
        this.applyRead(event);
        break;
      case "typing":
        this.applyTyping(event);
        break;
      case "presence":
        for (const change of listOf<Json>(event.changes, "changes")) {
          this.applyPresence(change);
        }
        break;
      case "conversation":
        void this.refreshList();
        break;
      default:
        break;
    }
  }

  applyMessage(message: Message, how: { own?: boolean; sync?: boolean }): void {
    const state = this.states.get(message.conversation);
    if (state === undefined) {
      return;
    }
    const isNew = !state.messages.has(message.id) && !this.threadMessages.has(message.id);
    if (message.thread_root !== null && this.thread === message.thread_root) {
      this.threadMessages.set(message.id, message);
      this.renderThread();
    }
    this.store(state, message);
    if (message.thread_root !== null && isNew && !how.sync && message.sender !== boot.user && this.thread !== message.thread_root) {
      // A reply in a thread that is not open: one more unread there, unless the count
      // asked for already includes it.
      const known = this.threadKnown.get(message.thread_root);
      if (known !== undefined && known >= 0 && message.seq > known) {
        this.threadKnown.set(message.thread_root, message.seq);
        this.threadUnread.set(message.thread_root, (this.threadUnread.get(message.thread_root) ?? 0) + 1);
        const root = state.messages.get(message.thread_root);
        if (root && root.last_reply_seq < message.seq) {
          root.last_reply_seq = message.seq;
          root.reply_count += 1; // the root's own change event brings its true state
        }
      }
    }
    if (message.thread_root === null && isNew && message.sender !== boot.user) {
      if (message.conversation !== this.current || document.visibilityState !== "visible") {
        state.info.unread = (state.info.unread ?? 0) + 1;
        if (this.mentionsMe(message)) {
          state.info.mentions_unread = (state.info.mentions_unread ?? 0) + 1;
        }
        this.renderList();
      }
      if (!how.sync && this.mentionsMe(message)) {
        this.notify(state, message);
      }
    }
    if (message.conversation === this.current && state.loaded && !how.sync) {
      const nearBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 120;
      this.renderMessages(state, false);
      if (isNew && (nearBottom || how.own)) {
        this.list.scrollTop = this.list.scrollHeight;
      }
      if (isNew && message.thread_root === null) {
        this.announcer.textContent = text("new_message", { name: message.sender_name });
      }
    }
    if (message.sender !== null) {
      state.typing.delete(message.sender);
      this.renderTyping();
    }
  }

  private mentionsMe(message: Message): boolean {
    return message.mentions_channel || (message.mentions ?? []).includes(boot.user);
  }

  private applyRead(event: Json): void {
    const state = this.states.get(Number(event.conversation));
    if (state === undefined) {
      return;
    }
    const user = Number(event.user);
    const seq = Number(event.seq);
    if (user === boot.user) {
      state.info.last_read_seq = Math.max(state.info.last_read_seq ?? 0, seq);
      return;
    }
    const known = state.reads.get(user) ?? (typeof event.from === "number" ? event.from : undefined);
    state.reads.set(user, Math.max(seq, known ?? 0));
    if (known === undefined) {
      // Where this reader's pointer was is not known here: ask the server for the
      // counts of what is shown (one request for a burst of such events).
      this.refreshCounts(state);
      return;
    }
    for (const message of state.messages.values()) {
      if (message.seq > known && message.seq <= seq && message.sender !== user) {
        state.readCounts.set(message.id, this.readCount(message, state) + 1);
        this.updateReadCount(message, state);
      }
    }
  }

  private refreshCounts(state: ConversationState): void {
    if (state.countsTimer !== null || !state.loaded) {
      return;
    }
    state.countsTimer = window.setTimeout(async () => {
      state.countsTimer = null;
      const limit = Math.min(200, Math.max(PAGE_SIZE, state.messages.size));
      const answer = await api("GET", `conversations/${state.info.id}/messages?limit=${limit}`);
      if (!ok(answer)) {
        return;
      }
      for (const message of listOf<Message>(answer.data, "items")) {
        if (typeof message.read_count === "number") {
          state.readCounts.set(message.id, message.read_count);
          this.updateReadCount(message, state);
        }
      }
    }, 150);
  }

  private applyTyping(event: Json): void {
    const state = this.states.get(Number(event.conversation));
    const user = Number(event.user);
    if (state === undefined || user === boot.user) {
      return;
    }
    state.typing.set(user, {
      name: String(event.name ?? ""),
      thread: event.thread === null || event.thread === undefined ? null : Number(event.thread),
      until: Date.now() + TYPING_SHOW_MS,
    });
    this.renderTyping();
    window.setTimeout(() => this.renderTyping(), TYPING_SHOW_MS + 50);
  }

  private renderTyping(): void {
    const state = this.current === null ? undefined : this.states.get(this.current);
    const now = Date.now();
    const names: string[] = [];
    if (state) {
      for (const [user, entry] of state.typing) {
        if (entry.until < now) {
          state.typing.delete(user);
        } else {
          names.push(entry.name);
        }
      }
    }
    this.typingLine.textContent = names.length === 0 ? "" : text("typing", { names: names.join("、") });
  }

  sendTyping(thread: number | null): void {
    if (this.current !== null) {
      this.socket.send({ op: "chat.typing", conversation: this.current, thread });
    }
  }

  // --- rendering messages ---

  renderMessages(state: ConversationState, toEnd: boolean): void {
    if (state.info.id !== this.current) {
      return;
    }
    const restoreFocus = keepFocus(this.list);
    const sorted = Array.from(state.messages.values()).sort((a, b) => a.seq - b.seq);
    const nodes: HTMLElement[] = [];
    if (state.hasOlder) {
      const older = button(text("load_older"), { class: "chat-older", "data-older": "" });
      older.addEventListener("click", () => void this.loadOlder());
      nodes.push(older);
    }
    let day = "";
    for (const message of sorted) {
      const thisDay = dayKey(message.created_at);
      if (thisDay !== day) {
        day = thisDay;
        nodes.push(
          el("div", { class: "chat-day", role: "separator" }, el("span", {}, dayLabel(message.created_at))),
        );
      }
      if (state.markerSeq !== null && message.seq === state.markerSeq) {
        nodes.push(el("div", { class: "chat-unread-marker", role: "separator", "data-unread-marker": "" }, el("span", {}, text("unread_from_here"))));
      }
      nodes.push(this.renderMessage(message, state, false));
    }
    if (sorted.length === 0) {
      nodes.push(el("p", { class: "chat-empty" }, text("no_messages")));
    }
    this.observer.disconnect();
    this.list.replaceChildren(...nodes);
    if (this.focusedId !== null) {
      this.list.querySelector(`[data-message="${this.focusedId}"]`)?.classList.add("chat-focus");
    }
    this.list.querySelectorAll<HTMLElement>("[data-message]").forEach((node) => this.observer.observe(node));
    this.checkThreads(sorted);
    if (toEnd) {
      const marker = this.list.querySelector<HTMLElement>("[data-unread-marker]");
      if (marker) {
        this.list.scrollTop = Math.max(0, marker.offsetTop - this.list.offsetTop - 40);
      } else {
        this.list.scrollTop = this.list.scrollHeight;
      }
    }
    restoreFocus();
  }

  /** Threads whose replies changed since their unread count was known: ask for it (the
   * thread's own answer carries ``unread``, after the person's thread pointer). */
  private checkThreads(messages: Message[]): void {
    for (const message of messages) {
      if (
        message.reply_count > 0 &&
        message.thread_root === null &&
        this.threadKnown.get(message.id) !== message.last_reply_seq &&
        !this.threadQueue.includes(message.id)
      ) {
        this.threadQueue.push(message.id);
      }
    }
    if (this.threadQueue.length > 0 && !this.threadFetching) {
      void this.fetchThreadCounts();
    }
  }

  private async fetchThreadCounts(): Promise<void> {
    this.threadFetching = true;
    let changed = false;
    while (this.threadQueue.length > 0) {
      const root = this.threadQueue.shift()!;
      const answer = await api("GET", `messages/${root}/thread`);
      if (!ok(answer)) {
        this.threadKnown.set(root, this.findMessage(root)?.last_reply_seq ?? -1); // not asked again
        continue;
      }
      const rootMessage = messageOf((answer.data.root ?? {}) as Json);
      const before = this.threadUnread.get(root) ?? 0;
      const unread = this.thread === root ? 0 : Number(answer.data.unread ?? 0);
      this.threadKnown.set(root, rootMessage ? rootMessage.last_reply_seq : -1);
      this.threadUnread.set(root, unread);
      changed ||= before !== unread;
    }
    this.threadFetching = false;
    const state = this.current === null ? undefined : this.states.get(this.current);
    if (changed && state) {
      this.renderMessages(state, false);
    }
  }

  private renderMessage(message: Message, state: ConversationState, inThread: boolean): HTMLElement {
    const own = message.sender === boot.user;
    const article = el("article", {
      class: `chat-msg${own ? " chat-own" : ""}${message.deleted ? " chat-deleted" : ""}${message.pinned ? " chat-pinned" : ""}`,
      "data-message": String(message.id),
      "data-seq": String(message.seq),
      "aria-label": `${message.sender_name} ${timeLabel(message.created_at)}`,
    });
    const head = el(
      "header",
      { class: "chat-msg-head" },
      el("span", { class: "chat-sender" }, message.sender_name || text("system")),
      " ",
      el("time", { datetime: message.created_at, title: fullTimeLabel(message.created_at) }, timeLabel(message.created_at)),
    );
    if (message.edited && !message.deleted) {
      head.append(" ", el("span", { class: "chat-edited" }, text("edited")));
    }
    if (message.pinned) {
      head.append(" ", el("span", { class: "chat-pin-mark" }, text("pinned")));
    }
    if (message.forwarded_from !== null) {
      head.append(" ", el("span", { class: "chat-forwarded" }, text("forwarded")));
    }
    article.append(head);
    const body = el("div", { class: "chat-body", "data-body": "" });
    if (message.deleted) {
      body.textContent = text("deleted");
    } else if (this.editing?.id === message.id) {
      body.append(this.editForm(message));
    } else {
      body.innerHTML = message.html; // rendered and escaped by the server (chat.formatting)
    }
    article.append(body);
    if (message.attachments.length > 0) {
      const files = el("ul", { class: "chat-files" });
      for (const file of message.attachments) {
        const link = el("a", { href: `${boot.api}attachments/${file.id}`, download: file.name }, file.name);
        const item = el("li", {}, link, el("span", { class: "chat-size" }, ` (${Math.ceil(file.size / 1024)} KB)`));
        if (file.has_thumbnail) {
          item.prepend(el("img", { src: `${boot.api}attachments/${file.id}/thumbnail`, alt: "", loading: "lazy", class: "chat-thumb" }));
        }
        files.append(item);
      }
      article.append(files);
    }
    const foot = el("div", { class: "chat-msg-foot" });
    for (const reaction of message.reactions) {
      const mine = reaction.users.includes(boot.user);
      foot.append(
        button(`${reaction.emoji} ${reaction.users.length}`, {
          class: "chat-reaction",
          "data-action": `react:${reaction.emoji}`,
          "aria-pressed": mine ? "true" : "false",
          "aria-label": text("reaction_n", { emoji: reaction.emoji, n: reaction.users.length }),
        }),
      );
    }
    if (!inThread && message.reply_count > 0) {
      const replies = button(text("replies_n", { n: message.reply_count }), { class: "chat-replies", "data-action": "thread" });
      const unread = this.threadUnread.get(message.id) ?? 0;
      if (unread > 0) {
        replies.append(
          " ",
          el("span", { class: "chat-badge chat-thread-unread", "data-thread-unread": String(unread) }, text("thread_unread_n", { n: unread })),
        );
      }
      foot.append(replies);
    }
    if (state.info.read_receipts !== false && !message.deleted && message.kind === "text") {
      const count = this.readCount(message, state);
      foot.append(
        button(text("read_n", { n: count }), {
          class: "chat-read",
          "data-action": "readers",
          "data-read-count": String(count),
          "aria-label": text("read_n_open", { n: count }),
        }),
      );
    }
    article.append(foot);
    if (!message.deleted && message.kind !== "system") {
      const actions = el("div", { class: "chat-actions", role: "group", "aria-label": text("actions") });
      if (!inThread) {
        actions.append(button(text("reply"), { "data-action": "thread" }));
      }
      actions.append(button(text("react"), { "data-action": "react-menu", "aria-haspopup": "true" }));
      if (!inThread) {
        actions.append(button(message.pinned ? text("unpin") : text("pin"), { "data-action": "pin" }));
        actions.append(button(text("forward"), { "data-action": "forward" }));
      }
      if (own) {
        actions.append(button(text("edit"), { "data-action": "edit" }));
        actions.append(button(text("delete"), { "data-action": "delete" }));
      }
      article.append(actions);
    }
    return article;
  }

  private readCount(message: Message, state: ConversationState): number {
    return state.readCounts.get(message.id) ?? message.read_count ?? 0;
  }

  private updateReadCount(message: Message, state: ConversationState): void {
    for (const node of Array.from(this.root.querySelectorAll<HTMLElement>(`[data-message="${message.id}"] [data-action=readers]`))) {
      const count = this.readCount(message, state);
      node.textContent = text("read_n", { n: count });
      node.dataset.readCount = String(count);
      node.setAttribute("aria-label", text("read_n_open", { n: count }));
    }
  }

  // --- message actions ---

  private findMessage(id: number): Message | undefined {
    for (const state of this.states.values()) {
      const found = state.messages.get(id);
      if (found) {
        return found;
      }
    }
    return this.threadMessages.get(id);
  }

  private messageAction(event: Event): void {
    const target = (event.target as HTMLElement).closest<HTMLElement>("[data-action]");
    const node = target?.closest<HTMLElement>("[data-message]");
    if (!target || !node) {
      return;
    }
    const message = this.findMessage(Number(node.dataset.message));
    if (!message) {
      return;
    }
    const action = target.dataset.action!;
    if (action.startsWith("react:")) {
      void this.react(message, action.slice(6));
    } else if (action === "react-menu") {
      this.reactMenu(message, target);
    } else if (action === "thread") {
      void this.openThread(message.id);
    } else if (action === "readers") {
      void this.showReaders(message);
    } else if (action === "edit") {
      this.edit(message);
    } else if (action === "delete") {
      void this.remove(message);
    } else if (action === "pin") {
      void this.pin(message);
    } else if (action === "forward") {
      void this.forward(message);
    }
  }

  private report(answer: Answer): boolean {
    if (ok(answer)) {
      const message = messageOf(answer.data);
      if (message) {
        this.applyMessage(message, {});
      }
      return true;
    }
    this.flash(errorText(answer));
    return false;
  }

  flash(message: string): void {
    const alert = this.root.querySelector<HTMLElement>("[data-alert]")!;
    alert.textContent = message;
    alert.hidden = message === "";
  }

  private async react(message: Message, emoji: string): Promise<void> {
    const mine = message.reactions.some((r) => r.emoji === emoji && r.users.includes(boot.user));
    this.report(await api("POST", `messages/${message.id}/reactions`, { emoji, add: !mine }));
  }

  private reactMenu(message: Message, opener: HTMLElement): void {
    const existing = opener.parentElement?.querySelector(".chat-react-menu");
    if (existing) {
      existing.remove();
      return;
    }
    const menu = el("div", { class: "chat-react-menu", role: "group", "aria-label": text("react") });
    for (const emoji of REACTIONS) {
      const choice = button(emoji, { "aria-label": text("react_with", { emoji }) });
      choice.addEventListener("click", (event) => {
        event.stopPropagation();
        menu.remove();
        opener.focus();
        void this.react(message, emoji);
      });
      menu.append(choice);
    }
    menu.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.stopPropagation();
        menu.remove();
        opener.focus();
      }
    });
    opener.after(menu);
    menu.querySelector("button")?.focus();
  }

  /** Start editing: the form lives in ``this.editing`` so that re-renders (live
   * events) keep it and what was typed. */
  private edit(message: Message): void {
    this.editing = { id: message.id, draft: message.text, error: "" };
    this.rerender(message);
    this.root.querySelector<HTMLTextAreaElement>(`[data-message="${message.id}"] [data-action=edit-box]`)?.focus();
  }

  private rerender(message: Message): void {
    const state = this.states.get(message.conversation);
    if (state) {
      this.renderMessages(state, false);
      this.renderThread();
    }
  }

  private editForm(message: Message): HTMLFormElement {
    const editing = this.editing!;
    const form = el("form", { class: "chat-edit" });
    const box = el("textarea", { "aria-label": text("edit_label"), rows: "3", "data-action": "edit-box" });
    box.value = editing.draft;
    const error = el("p", { class: "error", role: "alert" }, editing.error);
    error.hidden = editing.error === "";
    const save = el("button", { type: "submit" }, text("save"));
    const cancel = button(text("cancel"), { class: "secondary" });
    form.append(box, el("div", { class: "chat-edit-buttons" }, save, cancel), error);
    let composing = false;
    box.addEventListener("compositionstart", () => (composing = true));
    box.addEventListener("compositionend", () => (composing = false));
    box.addEventListener("input", () => {
      editing.draft = box.value;
    });
    const close = (): void => {
      this.editing = null;
      this.rerender(message);
      this.root.querySelector<HTMLElement>(`[data-message="${message.id}"] [data-action=edit]`)?.focus();
    };
    cancel.addEventListener("click", close);
    box.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.stopPropagation();
        close();
      } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !composing && event.keyCode !== 229) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const answer = await api("PATCH", `messages/${message.id}`, { text: editing.draft });
      if (ok(answer)) {
        this.editing = null;
        const updated = messageOf(answer.data);
        if (updated) {
          this.applyMessage(updated, {});
        }
        close();
      } else {
        editing.error = errorText(answer); // what was typed stays in the box
        this.rerender(message);
      }
    });
    return form;
  }

  private async remove(message: Message): Promise<void> {
    if (await this.dialogs.confirm(text("delete_confirm"), text("delete"))) {
      this.report(await api("DELETE", `messages/${message.id}`));
    }
  }

  private async pin(message: Message): Promise<void> {
    this.report(await api("POST", `messages/${message.id}/${message.pinned ? "unpin" : "pin"}`));
  }

  private async forward(message: Message): Promise<void> {
    const choices = Array.from(this.states.values())
      .map((s) => s.info)
      .filter((c) => c.id !== message.conversation && c.archived !== true);
    const target = await this.dialogs.forward(choices);
    if (target === null) {
      return;
    }
    const answer = await api("POST", `messages/${message.id}/forward`, {
      conversation: target,
      client_key: newKey(),
    });
    if (ok(answer)) {
      this.flash("");
      this.announcer.textContent = text("forwarded_done");
    } else {
      this.flash(errorText(answer));
    }
  }

  private async showPins(): Promise<void> {
    const conversation = this.current;
    if (conversation === null) {
      return;
    }
    const answer = await api("GET", `conversations/${conversation}/pins`);
    if (!ok(answer)) {
      this.flash(errorText(answer));
      return;
    }
    const chosen = await this.dialogs.pins(listOf<Message>(answer.data, "items"));
    if (chosen !== null && this.current === conversation) {
      await this.focusMessage(conversation, chosen);
    }
  }

  private async showReaders(message: Message): Promise<void> {
    const answer = await api("GET", `messages/${message.id}/readers`);
    if (!ok(answer)) {
      this.flash(errorText(answer));
      return;
    }
    const rows = listOf<Json>(answer.data, "readers").map((row) => ({
      name: String(row.name ?? ""),
      at: String(row.read_at ?? ""),
    }));
    await this.dialogs.readers(rows);
  }

  // --- threads ---

  async openThread(root: number): Promise<void> {
    this.thread = root;
    this.threadMessages.clear();
    this.threadPane.hidden = false;
    this.root.classList.add("chat-with-thread");
    await this.loadThread(root);
    this.threadComposer.box.focus();
  }

  private async loadThread(root: number): Promise<void> {
    const answer = await api("GET", `messages/${root}/thread`);
    if (!ok(answer) || this.thread !== root) {
      return;
    }
    const rootMessage = messageOf((answer.data.root ?? {}) as Json);
    for (const message of listOf<Message>(answer.data, "replies")) {
      this.threadMessages.set(message.id, message);
    }
    if (rootMessage) {
      const state = this.states.get(rootMessage.conversation);
      if (state) {
        this.store(state, rootMessage);
      }
    }
    this.renderThread();
  }

  closeThread(): void {
    if (this.thread === null) {
      return;
    }
    const root = this.thread;
    this.thread = null;
    this.threadPane.hidden = true;
    this.root.classList.remove("chat-with-thread");
    this.list.querySelector<HTMLElement>(`[data-message="${root}"] [data-action=thread]`)?.focus();
  }

  private renderThread(): void {
    if (this.thread === null) {
      return;
    }
    const root = this.findMessage(this.thread);
    const state = root ? this.states.get(root.conversation) : undefined;
    if (!root || !state) {
      return;
    }
    const replies = Array.from(this.threadMessages.values())
      .filter((m) => m.id !== root.id)
      .sort((a, b) => a.seq - b.seq);
    const restoreFocus = keepFocus(this.threadList);
    this.threadList.replaceChildren(
      this.renderMessage(root, state, true),
      el("p", { class: "chat-thread-count" }, text("replies_n", { n: replies.length })),
      ...replies.map((m) => this.renderMessage(m, state, true)),
    );
    restoreFocus();
    this.threadList.scrollTop = this.threadList.scrollHeight;
    const last = replies[replies.length - 1];
    if (last && this.canMarkRead()) {
      void api("POST", `messages/${root.id}/thread-read`, { seq: last.seq });
      this.threadKnown.set(root.id, Math.max(root.last_reply_seq, last.seq));
      if ((this.threadUnread.get(root.id) ?? 0) > 0) {
        this.threadUnread.set(root.id, 0);
        this.renderMessages(state, false);
      }
    }
  }

  // --- 既読: messages shown count as read ---

  private canMarkRead(): boolean {
    return document.visibilityState === "visible" && document.hasFocus();
  }

  private seen(entries: IntersectionObserverEntry[]): void {
    for (const entry of entries) {
      const seq = Number((entry.target as HTMLElement).dataset.seq);
      // Shown: half of it, or half of the pane for a message taller than the pane.
      const paneHeight = entry.rootBounds?.height ?? 0;
      const shown =
        entry.isIntersecting &&
        (entry.intersectionRatio >= 0.5 || entry.intersectionRect.height >= paneHeight / 2);
      if (shown) {
        this.visibleSeqs.add(seq);
      } else {
        this.visibleSeqs.delete(seq);
      }
    }
    this.flushVisible();
  }

  private flushVisible(): void {
    if (this.readTimer !== null) {
      window.clearTimeout(this.readTimer);
    }
    this.readTimer = window.setTimeout(() => this.markRead(), READ_DEBOUNCE_MS);
  }

  private markRead(): void {
    this.readTimer = null;
    const state = this.current === null ? undefined : this.states.get(this.current);
    if (!state || !this.canMarkRead() || this.visibleSeqs.size === 0) {
      return;
    }
    const highest = Math.max(...this.visibleSeqs);
    const mine = state.info.last_read_seq ?? 0;
    if (highest <= mine) {
      return;
    }
    state.info.last_read_seq = highest;
    // Unread left: those above what is now read.
    state.info.unread = Array.from(state.messages.values()).filter(
      (m) => m.seq > highest && m.sender !== boot.user && m.thread_root === null && !m.deleted,
    ).length;
    if (state.info.unread === 0) {
      state.info.mentions_unread = 0;
    }
    this.renderList();
    void api("POST", `conversations/${state.info.id}/read`, { seq: highest });
  }

  // --- notifications ---

  private setUpNotifications(): void {
    const enable = this.root.querySelector<HTMLButtonElement>("[data-notify-enable]")!;
    if (!("Notification" in window)) {
      enable.hidden = true;
      return;
    }
    const show = (): void => {
      enable.hidden = Notification.permission !== "default";
    };
    show();
    enable.addEventListener("click", () => {
      void Notification.requestPermission().then(show); // only on this button, never by itself
    });
  }

  private notify(state: ConversationState, message: Message): void {
    if (!("Notification" in window) || Notification.permission !== "granted") {
      return;
    }
    if (document.visibilityState === "visible" && document.hasFocus() && state.info.id === this.current) {
      return;
    }
    const note = new Notification(text("mention_title", { name: message.sender_name, conversation: state.info.name }), {
      body: message.text.slice(0, 140),
      tag: `chat-${message.id}`,
    });
    note.addEventListener("click", () => {
      window.focus();
      void this.open(state.info.id);
    });
  }

  // --- presence ---

  private setUpPresence(): void {
    const form = this.root.querySelector<HTMLFormElement>("[data-presence-form]")!;
    const status = this.root.querySelector<HTMLElement>("[data-my-status]")!;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const minutes = Number(data.get("expires") || "0");
      const answer = await api("PUT", "presence", {
        status: data.get("status"),
        message: data.get("message") ?? "",
        expires_at: minutes > 0 ? new Date(Date.now() + minutes * 60_000).toISOString() : null,
      });
      const note = form.querySelector<HTMLElement>("[data-presence-note]")!;
      if (ok(answer)) {
        note.textContent = text("presence_saved");
        status.textContent = this.statusLabel(String(data.get("status")));
        (form.closest("details") as HTMLDetailsElement | null)?.removeAttribute("open");
      } else {
        note.textContent = errorText(answer);
      }
    });
    form.closest("details")?.addEventListener("keydown", (event) => {
      if ((event as KeyboardEvent).key === "Escape") {
        const details = form.closest("details") as HTMLDetailsElement;
        details.removeAttribute("open");
        details.querySelector("summary")?.focus();
      }
    });
    void api("GET", `presence?users=${boot.user}`).then((answer) => {
      if (ok(answer)) {
        const mine = (listOf<Json>(answer.data, "presence")[0] ?? {}) as Json;
        if (typeof mine.status === "string") {
          status.textContent = this.statusLabel(mine.status);
          const select = form.querySelector<HTMLSelectElement>("select[name=status]")!;
          select.value = mine.status;
          const input = form.querySelector<HTMLInputElement>("input[name=message]")!;
          input.value = typeof mine.message === "string" ? mine.message : "";
        }
      }
    });
    // Idle: no input for CHAT_PRESENCE_IDLE_MINUTES makes 離席 (the server decides
    // whether a status set by hand or by a meeting stays).
    const active = (): void => {
      if (this.idle) {
        this.idle = false;
        this.sendActivity(false);
      }
      if (this.idleTimer !== null) {
        window.clearTimeout(this.idleTimer);
      }
      this.idleTimer = window.setTimeout(() => {
        this.idle = true;
        this.sendActivity(true);
      }, boot.idle_minutes * 60_000);
    };
    for (const name of ["keydown", "pointerdown", "pointermove", "wheel", "focus"]) {
      window.addEventListener(name, active, { passive: true });
    }
    active();
  }

  sendActivity(idle: boolean): void {
    this.socket.send({ op: "chat.activity", idle });
  }

  private async watchPresence(): Promise<void> {
    // A direct message listed after the page was made: who is on the other side.
    for (const state of this.states.values()) {
      if (state.info.kind === "direct" && state.info.other_user === undefined) {
        state.info.other_user = null;
        const answer = await api("GET", `conversations/${state.info.id}/members`);
        const other = listOf<Json>(answer.data, "members").find((m) => m.id !== boot.user);
        if (other) {
          state.info.other_user = Number(other.id);
          this.renderList();
        }
      }
    }
    const users = Array.from(this.states.values())
      .map((s) => s.info.other_user)
      .filter((u): u is number => typeof u === "number");
    this.socket.send({ op: "chat.presence_watch", users: [boot.user, ...new Set(users)].slice(0, 500) });
  }

  private applyPresence(change: Json): void {
    const user = Number(change.user);
    const status = String(change.status ?? "offline");
    if (user === boot.user) {
      const mine = this.root.querySelector<HTMLElement>("[data-my-status]");
      if (mine) {
        mine.textContent = this.statusLabel(status);
      }
    }
    this.presence.set(user, { status, message: String(change.message ?? "") });
    for (const dot of Array.from(this.root.querySelectorAll<HTMLElement>(`[data-presence="${user}"]`))) {
      dot.className = `chat-dot chat-dot-${status}`;
      const message = String(change.message ?? "");
      dot.setAttribute("aria-label", message ? `${this.statusLabel(status)}（${message}）` : this.statusLabel(status));
      dot.title = dot.getAttribute("aria-label") ?? "";
    }
  }
}

function startChat(): void {
  const root = document.getElementById("chat");
  const data = document.getElementById("chat-boot");
  if (root === null || data === null) {
    return;
  }
  boot = JSON.parse(data.textContent ?? "{}") as Boot;
  t = boot.strings;
  const client = new ChatClient();
  client.start();
  root.setAttribute("data-ready", "true");
}

document.addEventListener("DOMContentLoaded", startChat);
