// Building the page: h() makes an element from a tag, properties and children. Styles are only ever set
// through classes or the CSSOM (the Content-Security-Policy forbids inline style attributes in HTML).

// The bidirectional formatting characters: embeddings and overrides, isolates, and the marks.
const BIDI_CONTROLS = /[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/g;

// Text as a page shows it: bidirectional formatting characters as escapes (\u202e), as the CLI's printable()
// shows them. A record's "invoice \u202eexe.txt" read "invoice txt.exe", and its override turned round what
// followed it on the line (the JSON's `",`, the next key). h()'s text, title, aria-label and text children go
// through it; a Node child is taken as it is (the SQL editor's highlight, which must lie exactly over the text typed).
export function printable(text) {
  return String(text).replace(BIDI_CONTROLS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

// A bidirectional formatting character as printable() writes it (\u202e, any case)
const PRINTED_BIDI_CONTROL = /\\u(?:202[a-e]|206[6-9]|200[ef]|061c)/gi;

// A text box for a query (Explore's, the alerts' filter), which a shared link's q= fills: its bidirectional
// formatting characters shown as printable() writes them, those typed or pasted too (a link's override turned
// round the query the box showed, so it read other than what was searched); typed() reads them back, so what is
// searched is the query as it came. (\u202e written in the box is that character, as the pages show a record's.)
export function textBox(props) {
  const input = h("input", { type: "text", ...props, value: printable(props.value ?? "") });
  input.addEventListener("input", () => {
    if (input.value.search(BIDI_CONTROLS) < 0) return;
    const caret = input.selectionEnd ?? input.value.length;
    const before = printable(input.value.slice(0, caret));
    input.value = before + printable(input.value.slice(caret));
    input.setSelectionRange(before.length, before.length);
  });
  return input;
}

// A text box's text (or a part of it) with the characters it shows as escapes back: what the text means.
export function typed(text) {
  return text.replace(PRINTED_BIDI_CONTROL, (escape) => String.fromCharCode(parseInt(escape.slice(2), 16)));
}

// A filter's text as searched, from its box: what it means (typed()), without the spaces around it. Spaces alone
// are no filter: they were sent as q=+++, and the alerts said "No alert matches these filters".
export function filterText(text) {
  return typed(text).trim();
}

// A value as JSON text (JSON.stringify's), for h()'s children: each string, a key or a value, isolated (<bdi>) from
// the text around it. Two right-to-left strings with the neutral `": "` between them read as one right-to-left run,
// so a key and its value (an array's items) showed swapped: a record's {"מפתח": "ערך"} read "ערך" :"מפתח".
const JSON_STRING = /("(?:[^"\\]|\\.)*")/;

export function jsonNodes(value, indent) {
  return String(JSON.stringify(value, null, indent)).split(JSON_STRING)
    .map((part, i) => (i % 2 ? h("bdi", { text: part }) : part)).filter((part) => part !== "");
}

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "text") el.textContent = printable(value);
    else if (name === "title" || name === "aria-label") el.setAttribute(name, printable(value)); // (what a screen reader says)
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : printable(child));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export const SEVERITIES = ["debug", "info", "warning", "error", "critical"];

// Every page shows times in one zone, the person's choice (the header's "Times" button, or Explore's picker):
// the browser's own unless UTC was chosen. (Pages each had their own: alerts local, backtests UTC, unlabelled.)
const TIME_ZONE_KEY = "loglake-tz";

export function timeZone() {
  return localStorage.getItem(TIME_ZONE_KEY) === "utc" ? "utc" : "local";
}

export function setTimeZone(zone) {
  localStorage.setItem(TIME_ZONE_KEY, zone === "utc" ? "utc" : "local");
}

// The zone's IANA name: "UTC", or the browser's ("Europe/Berlin").
export function timeZoneName(zone = timeZone()) {
  return zone === "utc" ? "UTC" : Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

export function formatTime(ms, zone = timeZone()) {
  const d = new Date(ms);
  if (zone === "utc") return d.toISOString().replace("T", " ").replace("Z", " UTC");
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

// The times in a server's message (ISO-8601 UTC, as the API writes them: "resolved by admin at 2026-12-02T18:30:00.000Z")
// as the page writes every time, in the zone chosen: a 409's UTC time read as a wrong one beside the page's local times.
const ISO_UTC_TIME = /\b\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?Z\b/g;

export function timesShown(text) {
  return text.replace(ISO_UTC_TIME, (iso) => formatTime(Date.parse(iso)));
}

// "1 record", "2 records": a count and its noun (with the plural given when it is not the noun + "s").
export function counted(n, noun, nouns = `${noun}s`, shown = n.toLocaleString()) {
  return `${shown} ${n === 1 ? noun : nouns}`;
}

export function formatCount(n) {
  // (below 10,000 with its thousands separator, as the counts beside it are written: "3006" beside "4,873 records")
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(1)}k` : n.toLocaleString();
}

export function formatBytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

// Warnings (what is allowed but likely not meant) as a list, or nothing when there are none.
export function warningsList(warnings) {
  return warnings.length ? h("ul", { class: "warnings", "aria-label": "Warnings" }, warnings.map((w) => h("li", { text: w }))) : null;
}

// A link inside the UI: the router takes the click, so the page is not reloaded.
export function link(href, ...children) {
  return h("a", { href, "data-route": "" }, ...children);
}

// Does `action` (a request) with `button` disabled until it is done, and nothing while it is: a second click (a double
// click, Enter again in its form, a slow server) sent the request again, and its error ("an active key named ... exists",
// "no such key") replaced the first one's answer. The focus comes back to the button (disabled, it fell to the page's
// body), or goes where keepFocus() puts it when the action drew the view again without it (a revoked key's, a retried
// delivery's).
export async function whileDisabled(button, action) {
  if (button.disabled) return;
  const focusBack = keepFocus(document.body);
  button.disabled = true;
  try {
    await action();
  } finally {
    button.disabled = false;
    focusBack();
  }
}

// -- a keyboard's place kept when a view is drawn again ---------------------------------------------------

// What a keyboard reaches with Tab.
const CONTROLS = 'a[href], button:not(:disabled), input:not(:disabled), select:not(:disabled), textarea:not(:disabled), [tabindex]:not([tabindex="-1"])';

// How a control is found again in a view drawn anew: by its data-focus, given where its label says what changes (a
// filter chip's count), else by its aria-label.
function controlKey(control) {
  for (const name of ["data-focus", "aria-label"]) {
    const value = control.getAttribute(name);
    if (value) return `[${name}="${CSS.escape(value)}"]`;
  }
  return null;
}

let waitingToFocus = null;

// Where the focus is in `scope` now, as a function that puts it back once the view is drawn again, unless the focus went
// elsewhere meanwhile: on the same control if it is still there and usable, else on the one drawn in its stead in
// `scope` (controlKey); else, `wait`ing, once it is there (a page may draw it with its answer), or else on `fallback`,
// or the first control of the nearest part of the page around it still there. The focus fell to the page's body, and a
// keyboard's next Tab started again from the top of the page; a closed select's arrow key changes the view at each
// press, so the next one did nothing.
export function keepFocus(scope, { wait = false, fallback = null } = {}) {
  const stopWaiting = () => { // (for an earlier view: its control must not take the focus in this one)
    waitingToFocus?.disconnect();
    waitingToFocus = null;
  };
  const focused = document.activeElement;
  if (!focused || focused === document.body || !scope.contains(focused)) return stopWaiting;
  const key = controlKey(focused);
  const around = [];
  for (let part = focused.parentElement; part && scope.contains(part); part = part.parentElement) around.push(part);
  return () => {
    stopWaiting();
    const found = () => {
      if (document.activeElement && document.activeElement !== document.body) return true; // (moved meanwhile: left there)
      const control = focused.isConnected && !focused.disabled ? focused : key && scope.querySelector(key);
      control?.focus();
      return Boolean(control);
    };
    if (found()) return;
    if (wait) {
      if (!key) return; // (nothing to know it by in the view drawn)
      waitingToFocus = new MutationObserver(() => {
        if (!found()) return;
        waitingToFocus.disconnect();
        waitingToFocus = null;
      });
      waitingToFocus.observe(scope, { childList: true, subtree: true });
      return;
    }
    const near = around.filter((part) => part.isConnected).map((part) => part.querySelector(CONTROLS)).find(Boolean);
    (fallback?.isConnected ? fallback : near)?.focus();
  };
}

// A button copying text (or what a function returns); the size of a plain button unless `small`, to
// match the buttons beside it.
export function copyButton(text, label = "Copy", { small = false } = {}) {
  const button = h("button", { type: "button", class: small ? "small" : null, text: label });
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(typeof text === "function" ? text() : text);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Copy refused by the browser";
    }
    setTimeout(() => { button.textContent = label; }, 1500);
  });
  return button;
}

export function download(name, type, body) {
  const url = URL.createObjectURL(new Blob([body], { type }));
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
