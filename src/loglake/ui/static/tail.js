// The live tail: records matching the query as the server commits them (server-sent events from
// /logs/tail), newest first. Pausing keeps what arrived; the server says when it dropped records for
// a slow page. A tail outlives a restart of its server, as `loglake tail` does: it reconnects, and once
// back names the time it was away with a link to the search that shows what arrived meanwhile.
// Returns the function that closes the stream when the page is left; `stopped` is called when the tail
// ends for good (the server refused it), so the page's toggle can say the tail is off.
import { url } from "./api.js";
import { counted, formatTime, h, replace } from "./dom.js";
import { exploreHref, recordRow } from "./explore.js";
import { parseJson } from "./json.js";

const KEPT = 2000; // records the page keeps; older ones leave the list
// Waits between reconnects: doubling from the first, jittered, never past the cap. Short, as `loglake
// tail`'s: records that arrive while the tail is away are not shown.
const RECONNECT_FIRST_MS = 250; // (those of `loglake tail`: RECONNECT_BACKOFF in cli_tail.py)
const RECONNECT_CAP_MS = 2000;
const NOT_NOW = new Set([408, 429, 502, 503, 504]); // answers that say "not now" rather than "no"

export function startTail(box, state, go, stopped) {
  const list = h("ol", { class: "records", "aria-label": "Live records, newest first", "aria-live": "off" });
  const rate = h("span", { class: "rate", text: "0 records/s" });
  const note = h("span", { class: "muted", role: "status", text: "Connecting…" });
  let paused = false, arrivals = [], held = [];
  // Records that came since the last frame, drawn together in the next (one change of the list, one scroll): drawn
  // one by one, each scrolled to, a few hundred a second held the page still. A tab in the background draws no
  // frames: they wait there, the newest KEPT at most, as a paused tail's do.
  let coming = [], frame = null;
  const pause = h("button", { type: "button", class: "toggle", "aria-pressed": "false", text: "Pause", onclick: () => {
    paused = !paused;
    pause.textContent = paused ? "Resume" : "Pause";
    pause.setAttribute("aria-pressed", String(paused));
    if (!paused) { showSoon(held); held = []; }
  } });
  const follow = h("input", { type: "checkbox", id: "autoscroll", checked: true });
  replace(box, h("div", { class: "tail-bar" }, pause, h("label", { for: "autoscroll" }, follow, " Keep the newest in view"), rate, note), list);

  // (records oldest first, in one change of the list: Resume drew each held record, and scrolled to it, in turn,
  // which held the page still for seconds)
  function show(records) {
    list.prepend(...records.map((record) => recordRow(record, state, go)).reverse());
    while (list.children.length > KEPT) list.lastChild.remove();
    if (follow.checked) list.firstChild?.scrollIntoView({ block: "nearest" });
  }

  function showSoon(records) {
    coming.push(...records);
    if (coming.length > KEPT) coming.splice(0, coming.length - KEPT);
    frame ??= requestAnimationFrame(() => {
      frame = null;
      const drawn = coming;
      coming = [];
      show(drawn);
    });
  }

  const address = url("/logs/tail", { q: state.q });
  let source = null, retry = null, failures = 0, awaySince = null, left = false, wasLive = false;
  let lastShownAt = Date.now(); // (a dropped burst came after it)

  function connect() {
    source = new EventSource(address);
    source.addEventListener("open", () => {
      failures = 0;
      if (awaySince === null || !wasLive) note.textContent = "Live"; // (nothing was missed before it was ever live)
      else sayMissed(awaySince, Date.now());
      awaySince = null;
      wasLive = true;
    });
    source.addEventListener("record", (event) => {
      const record = parseJson(event.data, { asSent: true });
      lastShownAt = Date.now();
      arrivals.push(lastShownAt);
      if (paused) {
        held.push(record);
        // Resume shows the newest KEPT at most: an older one held would leave the list as soon as it came in (a
        // tail paused for a night held every record of the night)
        if (held.length > KEPT) held.shift();
      } else showSoon([record]);
    });
    source.addEventListener("dropped", (event) => {
      // The server keeps the newest of a burst: the dropped came before them, since the last record shown.
      const { count } = JSON.parse(event.data);
      const missed = exploreHref({ ...state, range: "", since: lastShownAt - 1000, until: Date.now(), tail: false });
      replace(note, `The server dropped ${counted(count, "record")} that came faster than this page could take: the older ones of a burst; `,
        h("a", { href: missed, "data-route": "", text: "search them" }), ".");
    });
    source.addEventListener("end", (event) => reconnect(`The live tail ended: ${JSON.parse(event.data).reason}`));
    // The server's own `error` events carry a message (the search failed, the key was revoked or the session
    // ended: it ends the tail); the browser's carry none: the connection was lost (the browser would try again), or the server
    // answered with no stream (it does not: the server is stopping, busy, or refuses the search).
    source.addEventListener("error", (event) => {
      if (event.data) end(`The live tail failed: ${JSON.parse(event.data).message}`);
      else if (source.readyState === EventSource.CLOSED) reconnectIfAccepted();
      else reconnect("The connection to the server was lost");
    });
  }

  // A tail that failed to open is asked for again by fetch, which, unlike EventSource, reads the refusal (a
  // stream it opens is closed at once): a refusal ends it for good, saying why (the query's fault, where it is);
  // "not now" (the key's live tails all open elsewhere, the rate limit, a server stopping) or no answer at all is
  // waited out, saying which.
  async function reconnectIfAccepted() {
    source.close();
    const probe = new AbortController();
    let answer = null, reason = "";
    try {
      answer = await fetch(address, { signal: probe.signal, credentials: "same-origin", headers: { accept: "text/event-stream" } });
      if (!answer.ok) reason = (await answer.json()).error?.message || "";
    } catch {
      // no answer: the server is away (or no JSON in the refusal: its status says enough)
    } finally {
      probe.abort();
    }
    if (left) return;
    if (answer && !answer.ok && !NOT_NOW.has(answer.status)) {
      end(`The live tail stopped: ${reason || `the server refused it (HTTP ${answer.status})`}.`);
    } else {
      reconnect(reason ? `The server is not taking this live tail now: ${reason}` : answer ? "The server is not taking live tails now" : "The server cannot be reached");
    }
  }

  function reconnect(why) {
    source.close();
    if (awaySince === null) awaySince = Date.now();
    const wait = Math.random() * Math.min(RECONNECT_CAP_MS, RECONNECT_FIRST_MS * 2 ** failures++);
    replace(note, `${why}; reconnecting…`); // (the server's words, which may quote the query: as the page shows text)
    retry = setTimeout(connect, wait);
  }

  function end(why) {
    source.close();
    const [before, ...after] = why.split(" at /login"); // (a session that ended: the sign-in page as a link)
    if (after.length) replace(note, `${before} at `, h("a", { href: url("/login", { next: location.pathname + location.search }), text: "/login" }), after.join(" at /login"));
    else replace(note, why);
    pause.hidden = rate.hidden = follow.parentElement.hidden = true; // (a tail that is over has nothing to pause)
    stopped();
  }

  // What `loglake tail` says once back: the time the tail was away, and where to find what arrived then.
  function sayMissed(since, until) {
    const missed = exploreHref({ ...state, range: "", since, until, tail: false });
    replace(note, `Live again. Records that arrived while the tail was away (${formatTime(since, state.tz)} → ${formatTime(until, state.tz)}) are not shown: `,
      h("a", { href: missed, "data-route": "", text: "search them" }), ".");
  }

  connect();
  const timer = setInterval(() => {
    const now = Date.now();
    arrivals = arrivals.filter((t) => now - t < 5000);
    rate.textContent = `${(arrivals.length / 5).toFixed(1)} records/s`;
  }, 1000);
  return () => { left = true; source.close(); clearTimeout(retry); clearInterval(timer); cancelAnimationFrame(frame); };
}
