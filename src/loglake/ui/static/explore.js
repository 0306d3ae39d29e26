// Explore: a query with completion, a time range, the histogram (drag to zoom), the records newest
// first with infinite scroll, a record's fields (copy, surrounding records, filter for/against a value),
// facets, and the live tail. The whole view lives in the URL: q, range or from/to, tz, tail.
import { api, errorBox, untilAnswering, url } from "./api.js";
import { stackedBars } from "./chart.js";
import { SEVERITIES, copyButton, counted, filterText, formatCount, formatTime, h, jsonNodes, printable, replace, setTimeZone, textBox, timeZone, typed } from "./dom.js";
import { isStructured } from "./json.js";
import { startTail } from "./tail.js";
import { FIELDS, RECORD_FIELDS, attributeKey, term, withTerm } from "./terms.js";

const RANGES = [["5m", 5 * 60e3], ["15m", 15 * 60e3], ["1h", 3600e3], ["6h", 6 * 3600e3],
  ["24h", 86400e3], ["7d", 7 * 86400e3], ["30d", 30 * 86400e3]];
const TRACE_WINDOW = 3600e3; // "logs of this trace" looks this far either side of the record
const PAGE = 100;
const SECONDS_LABELED_BELOW_MS = 10 * 60e3; // a histogram spanning less has its axis labeled to the second
const DRAWN_MARK = "loglake:explore-drawn";
// sessionStorage: the query typed in the box and not yet searched, with the query of the view it was typed over
// ({ over, text }), as the SQL page keeps its draft: a session that ended meanwhile sent the person to sign in (from
// the range picker, the live tail's toggle), and back on the view the box held the view's query, the typing gone.
const DRAFT_KEY = "loglake-explore-draft";

// The view's state from the URL; `now` fixed when the view is drawn, so the histogram, the list and its
// pages all cover the same window.
function stateOf(params) {
  const from = Number(params.get("from")), to = Number(params.get("to"));
  // (a range it does not offer, `range=2h`, is the default: it searched 1 h while the picker said "Last 5m")
  const [range, duration] = RANGES.find(([name]) => name === params.get("range")) || RANGES[2];
  const absolute = from > 0 && to > from;
  const now = Date.now();
  return {
    q: (params.get("q") || "").trim(), // (a link's q= of spaces alone is no query, as the box's: see filterText)
    range: absolute ? "" : range,
    since: absolute ? from : now - duration,
    until: absolute ? to : now,
    tz: ["utc", "local"].includes(params.get("tz")) ? params.get("tz") : timeZone(), // (a link's own, else the UI's)
    tail: params.get("tail") === "1",
  };
}

export function exploreHref(state) {
  const absolute = !state.range;
  return url("/ui/explore", {
    q: state.q,
    range: absolute ? "" : state.range,
    from: absolute ? Math.round(state.since) : "",
    to: absolute ? Math.round(state.until) : "",
    tz: state.tz === "utc" || timeZone() === "utc" ? state.tz : "", // (local, the default, unless UTC was chosen)
    tail: state.tail ? "1" : "",
  });
}

export function render(main, { params, navigate }) {
  const state = stateOf(params);
  const go = (changes) => navigate(exploreHref({ ...state, ...changes }));
  const redraw = () => navigate(exploreHref(state), { replaceState: true });
  const left = new AbortController(); // the page is left: stop waiting for a server that did not answer
  const facetsBox = h("aside", { class: "facets", "aria-label": "Facets" });
  const histogramBox = h("div", { class: "histogram" });
  const results = h("div", { class: "results" });
  const queryBox = queryInput(state, left.signal);
  const form = h("form", { class: "query-bar", role: "search", onsubmit: (e) => {
    e.preventDefault();
    sessionStorage.removeItem(DRAFT_KEY); // (searched: the view's query now, and no draft of the view it leaves)
    go({ q: filterText(queryBox.input.value) });
  } },
    queryBox.root,
    rangePicker(state, go),
    h("button", { type: "submit", class: "primary", text: "Search" }));
  let tailRefused = false; // the server refused the live tail: it is off, and the toggle starts it again
  const tailButton = h("button", { type: "button", class: state.tail ? "toggle on" : "toggle", "aria-pressed": String(state.tail),
    text: state.tail ? "Stop live tail" : "Live tail", onclick: () => (tailRefused ? redraw() : go({ tail: !state.tail })) });
  const heading = h("h1", { class: "sr-only", text: "Explore" });
  if (state.tail) { // records as they arrive: no range, so no histogram and no facets
    replace(main, h("div", { class: "explore" }, heading, form, h("div", { class: "toolbar" }, tailButton), results));
    const tailOff = () => {
      tailRefused = true;
      tailButton.className = "toggle";
      tailButton.setAttribute("aria-pressed", "false");
      tailButton.textContent = "Live tail";
    };
    return startTail(results, state, go, tailOff);
  }
  replace(main, h("div", { class: "explore" }, heading, form,
    h("div", { class: "toolbar" }, tailButton, h("span", { class: "muted", text: `${formatTime(state.since, state.tz)} → ${formatTime(state.until, state.tz)}${state.tz === "utc" ? "" : " local"}` })),
    histogramBox,
    h("div", { class: "explore-body" }, facetsBox, results)));
  // the records ask first: a key limited to a few requests a second gets them before the summaries
  const records = loadRecords(results, state, go, { redraw, signal: left.signal });
  const histogram = loadHistogram(histogramBox, state, go, left.signal);
  loadFacets(facetsBox, state, go, queryBox, { signal: left.signal });
  // The first useful paint: the histogram and the first page of records drawn (in the frame that shows
  // them); bench/ui_bench.py reads this mark in a browser.
  Promise.all([histogram, records]).then(() => requestAnimationFrame(() => performance.mark(DRAWN_MARK)));
  return () => left.abort();
}

// -- the query box and its completion -------------------------------------------------------------

// Values are completed from the facets of the whole time range (not narrowed by the query being typed).
function queryInput(state, signal) {
  let known = null;
  const facets = () => (known ||= api("/logs/facets", { params: { since: Math.round(state.since), until: Math.round(state.until), limit: 50 }, signal })
    .catch(() => ({})));
  const list = h("ul", { id: "q-completions", role: "listbox", class: "completions", hidden: true, "aria-label": "Completions" });
  const draft = keptDraft(state.q);
  const input = textBox({
    // (type text, not search: Chrome empties a search box on Escape, which here only closes what is open)
    id: "q", name: "q", value: draft ?? state.q, autocomplete: "off", spellcheck: "false",
    "data-query-box": "", role: "combobox", "aria-autocomplete": "list", "aria-expanded": "false",
    "aria-controls": "q-completions", "aria-label": "Search query",
    placeholder: 'words, "a phrase", service:api, -severity:debug, a OR b, (…)   (press / to focus)',
    title: 'Words and "phrases" match the message, field:value a field or attribute, -term leaves out.\n'
      + "host.name:x is a nested key or OpenTelemetry's dotted one; \"a.b\":x only the key a.b.\n"
      + "* is every record, field:* a field that is there, service:web* a value's start.\n"
      + "Terms side by side must all match; a OR b matches either (AND binds tighter than OR).\n"
      + "Parentheses group: service:api (timeout OR refused); -( … ) or NOT leaves a group out.",
  });
  let options = [], active = -1;
  const close = () => { list.hidden = true; input.setAttribute("aria-expanded", "false"); active = -1; input.removeAttribute("aria-activedescendant"); };
  const show = async () => {
    const all = await facets();
    const [word] = currentWord(input);
    options = suggestions(typed(word), all).map(printable); // (as the box shows its text)
    if (!options.length || !word) { close(); return; }
    replace(list, options.map((text, i) => h("li", { id: `q-option-${i}`, role: "option", text, "aria-selected": "false",
      onmousedown: (e) => { e.preventDefault(); accept(i); } })));
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
  };
  const highlight = (i) => {
    active = (i + options.length) % options.length;
    list.querySelectorAll("li").forEach((li, n) => li.setAttribute("aria-selected", String(n === active)));
    input.setAttribute("aria-activedescendant", `q-option-${active}`);
  };
  const accept = (i) => {
    const [word, start] = currentWord(input);
    const value = input.value;
    const chosen = options[i];
    const after = chosen.endsWith(":") ? "" : " ";
    input.value = value.slice(0, start) + chosen + after + value.slice(start + word.length);
    const caret = start + chosen.length + after.length;
    input.setSelectionRange(caret, caret);
    close();
    keep();
    if (chosen.endsWith(":")) show();
  };
  // (the box holds what it shows, escapes for bidi controls: typed() reads them back, as a search does)
  const keep = () => keepDraft(state.q, typed(input.value));
  input.addEventListener("input", keep);
  input.addEventListener("input", show);
  input.addEventListener("blur", close);
  input.addEventListener("keydown", (e) => {
    if (list.hidden) return;
    if (e.key === "ArrowDown") { e.preventDefault(); highlight(active + 1); }
    else if (e.key === "ArrowUp") { e.preventDefault(); highlight(active - 1); }
    else if ((e.key === "Enter" || e.key === "Tab") && active >= 0) { e.preventDefault(); accept(active); }
    else if (e.key === "Escape") { e.stopPropagation(); close(); }
  });
  document.addEventListener("loglake:close", close);
  return { root: h("div", { class: "q-wrap" }, input, list), input, keep };
}

// The query typed over the view of query `over` and not searched, or null: none, or typed over another view (a
// link followed, a facet clicked) whose query the box shows.
function keptDraft(over) {
  try {
    const draft = JSON.parse(sessionStorage.getItem(DRAFT_KEY) || "null");
    return draft && draft.over === over ? draft.text : null;
  } catch {
    return null; // unreadable: the view's query
  }
}

function keepDraft(over, text) {
  if (text.trim() === over) sessionStorage.removeItem(DRAFT_KEY); // (the view's own query: nothing unsearched)
  else sessionStorage.setItem(DRAFT_KEY, JSON.stringify({ over, text }));
}

// The word being typed, after any ( that opens a group: `(serv` completes `serv`.
function currentWord(input) {
  const caret = input.selectionStart ?? input.value.length;
  const before = input.value.slice(0, caret);
  const start = before.search(/[^\s(]*$/);
  return [before.slice(start), start];
}

// Field names, then the values of service, severity and log_type (as the facets of this view count them).
function suggestions(word, facets) {
  const negated = word.startsWith("-") ? "-" : "";
  const bare = word.slice(negated.length).toLowerCase();
  const colon = bare.indexOf(":");
  if (colon < 0) {
    const keys = [...FIELDS, ...(facets.attribute_keys || []).map((k) => attributeKey([k.value])).filter(Boolean)];
    return keys.filter((k) => k.replace(/^"/, "").toLowerCase().startsWith(bare)).slice(0, 12).map((k) => `${negated}${k}:`);
  }
  const field = bare.slice(0, colon), prefix = bare.slice(colon + 1).replace(/^"/, "");
  const values = field === "severity" || field === "level" ? SEVERITIES : (facets[field] || []).map((v) => v.value);
  return values.filter((v) => String(v).toLowerCase().startsWith(prefix)).map((v) => term(negated + field, v))
    .filter(Boolean).slice(0, 12);
}

// -- the time range ------------------------------------------------------------------------------

function rangePicker(state, go) {
  const toInput = (ms) => {
    const d = new Date(state.tz === "utc" ? ms : ms - new Date(ms).getTimezoneOffset() * 60e3);
    return d.toISOString().slice(0, 23); // (with the milliseconds: Apply cut 12:00:00.500 to 12:00:00, the end's last records left out)
  };
  const fromInput = (text) => {
    const ms = Date.parse(`${text}${state.tz === "utc" ? "Z" : ""}`);
    return Number.isNaN(ms) ? null : ms;
  };
  const select = h("select", { "aria-label": "Time range", name: "range" },
    RANGES.map(([name]) => h("option", { value: name, text: `Last ${name}`, selected: state.range === name })),
    h("option", { value: "", text: "Absolute…", selected: !state.range }));
  const from = h("input", { type: "datetime-local", step: "0.001", value: toInput(state.since), "aria-label": "From" });
  const to = h("input", { type: "datetime-local", step: "0.001", value: toInput(state.until), "aria-label": "To" });
  // A refusal is for the times it was given: once either changes it goes (left set, it kept the search form,
  // which holds these fields, from submitting).
  for (const input of [from, to]) input.addEventListener("input", () => to.setCustomValidity(""));
  const absolute = h("span", { class: "absolute", hidden: Boolean(state.range) }, from, h("span", { text: "→" }), to,
    h("button", { type: "button", text: "Apply", onclick: () => {
      const a = fromInput(from.value), b = fromInput(to.value);
      if (a !== null && b !== null && b > a) go({ range: "", since: a, until: b });
      else to.setCustomValidity("the end must be after the start");
      to.reportValidity();
    } }));
  select.addEventListener("change", () => {
    if (select.value) go({ range: select.value });
    else absolute.hidden = false;
  });
  // Escape closes the panel unapplied, the picker back on the range shown (it said "Absolute…" over "Last 1h")
  absolute.addEventListener("keydown", (e) => {
    if (e.key !== "Escape" || !state.range) return;
    absolute.hidden = true;
    select.value = state.range;
    select.focus();
  });
  const zone = h("select", { "aria-label": "Time zone", name: "tz", onchange: (e) => {
    setTimeZone(e.target.value); // (every page's zone: the header's Times button says it)
    go({ tz: e.target.value });
  } },
    h("option", { value: "local", text: "Local time", selected: state.tz === "local" }),
    h("option", { value: "utc", text: "UTC", selected: state.tz === "utc" }));
  return h("div", { class: "range" }, select, absolute, zone);
}

// -- histogram, facets, records --------------------------------------------------------------------

function windowParams(state) {
  return { q: state.q, since: Math.round(state.since), until: Math.round(state.until) };
}

async function loadHistogram(box, state, go, signal) {
  replace(box, h("div", { class: "progress", text: "Counting records…" }));
  try {
    const data = await api("/logs/histogram", { params: { ...windowParams(state), buckets: 120 }, signal });
    const width = data.bucket_seconds * 1000;
    const bars = data.buckets.map((b) => ({ start: Date.parse(b.start), width, parts: SEVERITIES.map((s) => [s, b.counts[s] || 0]) }));
    const total = data.buckets.reduce((sum, b) => sum + b.total, 0);
    // Labels to the minute ("12-07 14:25"), with the year when the range crosses one ("2026-12-31 14:25": a
    // "01-02" read as of the range's first year); over a few minutes to the second ("14:25:30"), or every label of
    // a one-minute range (an alert's, opened in Explore) was the same minute.
    const shown = bars.length ? bars[bars.length - 1].start + width - bars[0].start : 0;
    const years = new Set([state.since, state.until].map((ms) => formatTime(ms, state.tz).slice(0, 4)));
    const [cutFrom, cutTo] = shown < SECONDS_LABELED_BELOW_MS ? [11, shown < 5_000 ? 23 : 19] : [years.size > 1 ? 0 : 5, 16];
    const chart = stackedBars(bars, {
      from: state.since,
      to: state.until,
      onZoom: (a, b) => go({ range: "", since: a, until: b }),
      tickFormat: (ms) => formatTime(ms, state.tz).slice(cutFrom, cutTo),
    });
    replace(box, h("div", { class: "histogram-head" },
      h("strong", { text: counted(total, "record") }),
      h("span", { class: "legend" }, SEVERITIES.map((s) => h("span", { class: `key s-${s}`, text: s }))),
      h("span", { class: "muted small", text: "drag across the chart to zoom" })), chart);
  } catch (error) {
    if (abandoned(error)) return;
    replace(box, shownWithRecords(error) ? null : errorBox(error, () => loadHistogram(box, state, go, signal)));
  }
}

// Each facet shows its top values; "More" shows up to the top FACETS_MORE of it (one value more is asked for than
// shown, to know whether there are more).
const FACETS_SHOWN = 8;
const FACETS_MORE = 50;

// (`opened`: the facet whose "More" was clicked)
async function loadFacets(box, state, go, queryBox, { signal, expanded = new Set(), opened = null }) {
  if (opened === null) replace(box, h("p", { class: "progress", text: "Counting values…" })); // (else kept meanwhile)
  try {
    const limit = expanded.size ? FACETS_MORE : FACETS_SHOWN + 1;
    const facets = await api("/logs/facets", { params: { ...windowParams(state), limit }, signal });
    const count = (item) => h("span", { class: "count", text: formatCount(item.count) });
    const facet = (field, item) => {
      const filter = term(field, item.value);
      return filter === null ? h("span", { class: "facet", text: item.value }, count(item))
        : h("button", { type: "button", class: "facet", title: `Filter for ${field} ${item.value}`, onclick: () => go({ q: withTerm(state.q, filter) }) },
          h("span", { class: field === "severity" ? `sev s-${item.value}` : "", text: item.value }), count(item));
    };
    const attributeFacet = (item) => {
      const key = attributeKey([item.value]);
      return key === null ? h("span", { class: "facet", text: item.value }, count(item))
        : h("button", { type: "button", class: "facet", title: `Complete ${key}: in the query`,
          onclick: () => { queryBox.input.value = withTerm(queryBox.input.value, printable(`${key}:`)); queryBox.keep(); queryBox.input.focus(); } },
        h("span", { text: item.value }), count(item));
    };
    const section = (title, name, items) => { // (name: the facet; a record field, but attribute_keys)
      const field = name === "attribute_keys" ? null : name;
      const open = expanded.has(name);
      const shown = open ? items : items.slice(0, FACETS_SHOWN);
      const more = !open && items.length > shown.length
        ? h("button", { type: "button", class: "link small", text: `More ${title.toLowerCase()}`, "aria-label": `More ${title.toLowerCase()}`,
          onclick: () => loadFacets(box, state, go, queryBox, { signal, expanded: new Set([...expanded, name]), opened: name }) })
        : open && items.length === FACETS_MORE ? h("p", { class: "muted small", text: `The top ${FACETS_MORE}: narrow the search for others.` }) : null;
      return h("section", { "data-facet": name }, h("h2", { text: title }),
        shown.length ? h("ul", {}, shown.map((item) => h("li", {}, field ? facet(field, item) : attributeFacet(item))))
          : h("p", { class: "muted small", text: "none" }),
        more);
    };
    replace(box, ...[["Services", "service"], ["Severities", "severity"], ["Log types", "log_type"], ["Attribute keys", "attribute_keys"]]
      .map(([title, name]) => section(title, name, facets[name])));
    // the "More" button is gone: focus goes to the first value it added
    if (opened) box.querySelector(`[data-facet="${opened}"] li:nth-child(${FACETS_SHOWN + 1}) .facet`)?.focus();
  } catch (error) {
    if (abandoned(error)) return;
    replace(box, shownWithRecords(error) ? null : errorBox(error, () => loadFacets(box, state, go, queryBox, { signal, expanded })));
  }
}

// The histogram, the facets and the records ask the same server with the same query and range: an error they
// all meet (a query the server cannot read, a server that does not answer) is one error, shown once, where the
// records would be.
function shownWithRecords(error) {
  return error.code === "invalid_query" || error.code === "network";
}

// The page was left while it asked: its requests are given up (a key with a low rate limit waited for each).
function abandoned(error) {
  return error.name === "AbortError";
}

// `redraw` draws the whole view again (a server that did not answer is waited for, and then asked again for it
// all); `signal` says the page was left.
async function loadRecords(box, state, go, { redraw, signal }) {
  const list = h("ol", { class: "records", "aria-label": "Records, newest first" });
  const more = h("div", { class: "more muted" });
  replace(box, list, more);
  let cursor = null, loading = false, done = false;
  const observer = new IntersectionObserver((entries) => { if (entries.some((e) => e.isIntersecting)) next(); });
  async function next() {
    if (loading || done) return;
    loading = true;
    box.setAttribute("aria-busy", "true");
    more.textContent = "Loading records…";
    try {
      const page = await api("/logs/search", { params: { ...windowParams(state), limit: PAGE, cursor }, signal, asSent: true });
      for (const record of page.logs) list.append(recordRow(record, state, go));
      cursor = page.next_cursor;
      done = !cursor;
      if (done) {
        observer.disconnect();
        if (list.children.length) replace(more, `${counted(list.children.length, "record")}, the end of the range.`);
        else replace(more, emptyResult(state, go));
      } else {
        more.textContent = "Scroll for more";
      }
    } catch (error) {
      observer.disconnect();
      if (abandoned(error)) return;
      if (error.code === "network") {
        replace(more, errorBox(error, redraw, "This page asks again every few seconds, and shows the records once loglake answers."));
        untilAnswering(signal).then(redraw, () => {});
      } else {
        replace(more, errorBox(error, () => { observer.observe(more); next(); }));
      }
    } finally {
      loading = false;
      box.setAttribute("aria-busy", "false");
    }
  }
  observer.observe(more);
  await next();
}

// A key:value term as the search syntax reads it (a key outside quotes, not a URL's scheme://): text with a
// colon that the user may have meant as text, unless its key is a record field's (service:api was told that a
// word before a colon names an attribute).
const NAMES_A_KEY = /(?:^|[\s(])-?((?:[^\s":()]|"[^"]*")+):(?!\/\/)/g;

function namesAnAttribute(q) {
  return [...q.matchAll(NAMES_A_KEY)].some(([, key]) => !RECORD_FIELDS.has(key));
}

function emptyResult(state, go) {
  const span = state.until - state.since;
  const wider = RANGES.find(([, ms]) => ms > span * 1.5);
  return h("div", { class: "empty" },
    h("p", { text: `No records${state.q ? ` match ${state.q}` : ""} between ${formatTime(state.since, state.tz)} and ${formatTime(state.until, state.tz)}.` }),
    h("p", { class: "muted", text: state.q ? "The filters or the time range may be too narrow." : "Nothing was logged in this time range." }),
    namesAnAttribute(state.q) ? h("p", { class: "muted", text: 'A word before a colon names an attribute (user:alice): quote text that holds a colon, as in "error: timeout".' }) : null,
    wider ? h("button", { type: "button", class: "primary", text: `Widen to the last ${wider[0]}`, onclick: () => go({ range: wider[0] }) }) : null,
    state.q ? h("button", { type: "button", text: "Clear the query", onclick: () => go({ q: "" }) }) : null);
}

export function recordRow(record, state, go) {
  const details = h("div", { class: "record-details", hidden: true });
  const summary = h("button", { type: "button", class: "record-summary", "aria-expanded": "false" },
    h("span", { class: `sev s-${record.severity}`, text: record.severity }),
    h("time", { datetime: record.datetime, text: formatTime(record.timestamp, state.tz) }),
    h("span", { class: "service", text: record.service }),
    h("span", { class: "message", text: record.message }));
  const toggle = (open) => {
    details.hidden = !open;
    summary.setAttribute("aria-expanded", String(open));
    if (open && !details.firstChild) replace(details, recordDetails(record, state, go));
  };
  summary.addEventListener("click", () => toggle(details.hidden));
  const row = h("li", { class: "record" }, summary, details);
  row.addEventListener("keydown", (e) => { if (e.key === "Escape" && !details.hidden) { toggle(false); summary.focus(); } });
  return row;
}

// A record's fields, each with + / − (filter for / out) where a search can name its value, and the
// record's surroundings and, when it has a trace id, every log of its trace.
function recordDetails(record, state, go) {
  const ids = ["trace_id", "span_id"].filter((id) => record[id]).map((id) => [id, id, record[id]]);
  const fields = [["service", "service", record.service], ["severity", "severity", record.severity],
    ["log_type", "log_type", record.log_type], ...ids];
  // under a heading of their own: an attribute named `service` read as the record's service
  const attributes = leaves(record.attributes, []).map(([path, value]) => [path.join("."), attributeKey(path), value]);
  const around = (ms) => ({ range: "", since: record.timestamp - ms, until: record.timestamp + ms, tail: false });
  const filterButton = (filter, text, label, title) => filter === null ? null
    : h("button", { type: "button", class: "small", "aria-label": label, title, text, onclick: () => go({ q: withTerm(state.q, filter) }) });
  const fieldRow = ([name, field, value]) => h("tr", {},
    h("th", { scope: "row", text: name }),
    h("td", { class: "value" }, typeof value === "string" ? value : jsonNodes(value)),
    h("td", { class: "filter" },
      filterButton(term(field, value), "+", `Filter for ${name} ${value}`, "Filter for this value"),
      filterButton(term(field, value, true), "−", `Filter out ${name} ${value}`, "Filter out this value")));
  return [
    h("div", { class: "actions" },
      copyButton(JSON.stringify(record, null, 2), "Copy JSON", { small: true }),
      h("button", { type: "button", class: "small", text: "Show surrounding records",
        onclick: () => go({ q: term("service", record.service), ...around(60e3) }) }),
      record.trace_id ? h("button", { type: "button", class: "small", text: "Logs of this trace",
        title: "Every record with this trace id, an hour either side of this one",
        onclick: () => go({ q: term("trace_id", record.trace_id), ...around(TRACE_WINDOW) }) }) : null),
    // the message whole, its lines as sent (a stack trace was one line in the row, and \n in the JSON)
    h("pre", { class: "message-text", tabindex: "0", "aria-label": "Message", text: record.message }),
    h("table", { class: "fields" }, h("tbody", {}, [
      ...fields.map(fieldRow),
      attributes.length ? h("tr", {}, h("th", { scope: "rowgroup", colspan: "3", class: "group", text: "attributes" })) : null,
      ...attributes.map(fieldRow)])),
    h("pre", { class: "json", tabindex: "0" }, jsonNodes(record, 2)),
  ];
}

// Attributes as (key path, leaf value) pairs: an object's keys are a path's steps, anything else a leaf, an
// empty object too (with no keys to step into, an attribute holding {} was missing from the fields).
function leaves(value, path) {
  if (isStructured(value) && !Array.isArray(value) && Object.keys(value).length) {
    return Object.entries(value).flatMap(([k, v]) => leaves(v, [...path, k]));
  }
  return path.length ? [[path, value]] : [];
}
