// Alerts: the list with status, level and rule filters and their counts; an alert's page with its
// evidence (each record linked to Explore at that moment), its deliveries, and acknowledge/resolve with
// a note. The filters live in the URL.
import { api, errorBox, url } from "./api.js";
import { counted, filterText, formatTime, h, jsonNodes, link, replace, textBox, timeZone, timesShown, whileDisabled } from "./dom.js";
import { exploreHref, recordRow } from "./explore.js";
import { isStructured } from "./json.js";
import { groupSearch, term } from "./terms.js";

const STATUSES = ["open", "acknowledged", "resolved", "suppressed"];
const LEVELS = ["informational", "low", "medium", "high", "critical"];
const SHOWN = 200; // alerts listed, newest first
const BY_RULE = "rule"; // who changed an alert's status when the engine did (alerts/apply.py's BY_RULE)
// sessionStorage: each alert's note typed and not yet sent, by alert id. A session that ended while a note was
// typed sent the person to sign in, and the note was gone when they came back to the alert.
const NOTES_KEY = "loglake-alert-notes";
// The list as last shown (its filters), where an alert's page leads back to: "← Alerts" led to the whole list.
let listShown = "/ui/alerts";

export function render(main, context) {
  if (context.item) {
    drawAlert(main, context);
    return null;
  }
  const left = new AbortController();
  drawList(main, context, left.signal);
  return () => left.abort(); // (the page's cleanup: a list left is not drawn)
}

// `signal`: aborted once the list is left. Its answer is drawn into its own chips only: the answer of a list left
// for other filters, arriving late, drew its counts over the newer list's (main held the newer list's chips).
function drawList(main, { params, navigate }, signal) {
  // (a link's q= of spaces alone is no filter, as the box's: see filterText)
  const filters = { status: params.get("status") || "", level: params.get("level") || "", rule: params.get("rule") || "", q: (params.get("q") || "").trim() };
  listShown = url("/ui/alerts", filters);
  // (with the text typed in the box, asked for or not: a status chip clicked after typing dropped it)
  const go = (changes) => navigate(url("/ui/alerts", { ...filters, q: filterText(text.value), ...changes }));
  const box = h("div", { "aria-live": "polite" }, h("p", { class: "progress", text: "Loading alerts…" }));
  const text = textBox({ name: "q", value: filters.q, "aria-label": "Text in the title or rule", placeholder: "text in the title or rule" });
  const statusChips = h("div", { class: "chips", role: "group", "aria-label": "Status", id: "status-filter" });
  const levelChips = h("div", { class: "chips", role: "group", "aria-label": "Level", id: "level-filter" });
  const ruleButton = filters.rule ? h("button", { type: "button", id: "rule-filter", text: `Rule ${filters.rule} ✕`, onclick: () => go({ rule: "" }) }) : null;
  replace(main, h("h1", { text: "Alerts" }),
    h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); go({ q: filterText(text.value) }); } },
      statusChips, levelChips, text, h("button", { type: "submit", text: "Filter", "data-focus": "Filter" }), ruleButton),
    box);
  load();
  async function load() {
    try {
      const answer = await api("/alerts", { params: { status: filters.status, level: filters.level, rule: filters.rule, q: filters.q, limit: SHOWN }, signal });
      chips(statusChips, "status", STATUSES, answer.counts.status || {}, filters, go);
      chips(levelChips, "level", LEVELS, answer.counts.level || {}, filters, go);
      // (its id said nothing; the filter may be the start of an id or a rule file's name, which the server takes as
      // the one rule it names: every alert answered is that rule's, where only a whole id found its title)
      const ruleTitle = filters.rule ? answer.alerts[0]?.rule_title : null;
      if (ruleTitle) replace(ruleButton, `Rule: ${ruleTitle} ✕`);
      if (!answer.alerts.length) {
        replace(box, h("div", { class: "empty" }, h("p", { text: filters.status || filters.level || filters.rule || filters.q
          ? "No alert matches these filters." : "No alerts: no rule has matched yet." }),
        filters.status || filters.level || filters.rule || filters.q ? h("button", { type: "button", text: "Clear the filters", onclick: () => navigate("/ui/alerts") }) : null));
        return;
      }
      const rows = h("tbody", {}, answer.alerts.map((alert) => alertRow(alert, go)));
      replace(box, h("div", { class: "table-wrap", tabindex: "0" }, h("table", { class: "list" },
        // newest raised first: the raising time beside the last record's (ordered by one, showing only the other,
        // the list looked unordered)
        h("thead", {}, h("tr", {}, ["Level", "Status", "Alert", "Rule", "Matches", "Raised", "Last seen"].map((t) => h("th", { scope: "col", text: t })))),
        rows)),
        olderAlerts(answer, rows, filters, go));
    } catch (error) {
      if (error.name !== "AbortError") replace(box, errorBox(error, load));
    }
  }
}

function alertRow(alert, go) {
  return h("tr", {},
    h("td", {}, h("span", { class: `level l-${alert.level}`, text: alert.level })),
    h("td", { text: alert.status }),
    h("td", { class: "alert-title", title: alert.title }, link(`/ui/alerts/${encodeURIComponent(alert.id)}`, alert.title)),
    h("td", {}, h("button", { type: "button", class: "link", text: alert.rule_title, title: "Only this rule's alerts", onclick: () => go({ rule: alert.rule_id }) })),
    h("td", { class: "num", text: alert.match_count }),
    h("td", { text: formatTime(Date.parse(alert.created)) }),
    h("td", { text: formatTime(Date.parse(alert.last_seen)) }));
}

// The older alerts a page at a time, added under those shown. (The list stopped at the newest 200 and said to narrow
// the filters, which cannot part the alerts of one rule's run: 300 users' login failures, one rule, one level.)
function olderAlerts(answer, rows, filters, go) {
  if (!answer.next_cursor) return null;
  let shown = answer.alerts.length;
  let cursor = answer.next_cursor;
  const said = h("span", { class: "muted", text: `The newest ${counted(shown, "alert")} are shown. ` });
  const message = h("div", { role: "status" });
  const more = h("button", { type: "button", text: "Show older alerts", onclick: async () => {
    more.disabled = true;
    try {
      const page = await api("/alerts", { params: { ...filters, limit: SHOWN, cursor } });
      rows.append(...page.alerts.map((alert) => alertRow(alert, go)));
      shown += page.alerts.length;
      cursor = page.next_cursor;
      replace(message);
      said.textContent = cursor ? `The newest ${counted(shown, "alert")} are shown. ` : `All ${counted(shown, "alert")} are shown.`;
      if (cursor) more.disabled = false;
      else more.remove();
    } catch (error) {
      more.disabled = false;
      replace(message, errorBox(error));
    }
  } });
  return h("div", { class: "toolbar" }, said, more, message);
}

function chips(group, name, values, counts, filters, go) {
  const chosen = new Set(filters[name].split(",").filter(Boolean));
  replace(group, h("span", { class: "muted small", text: `${name}:` }), values.map((value) => {
    const on = chosen.has(value);
    // (data-focus: pressed, it keeps the focus in the list drawn again, where its count may be another; keepFocus)
    return h("button", { type: "button", class: "chip", "aria-pressed": String(on), "data-focus": `${name} ${value}`, onclick: () => {
      if (on) chosen.delete(value); else chosen.add(value);
      go({ [name]: [...chosen].join(",") });
    } }, `${value} `, h("span", { class: "count", text: counts[value] ?? 0 }));
  }));
}

function drawAlert(main, { item, allows, navigate }) {
  const box = h("div", {}, h("p", { class: "progress", text: "Loading the alert…" }));
  replace(main, h("p", {}, link(listShown, "← Alerts")), box);
  load();
  // (notice: why it was drawn again, said above it; unsent: the note of a change refused meanwhile, kept: it was lost;
  // changed: drawn again after a change, whose button is gone: the focus goes to the alert's heading, where it was left
  // on the page's body and a keyboard's next Tab started again from the top of the page)
  async function load(notice, unsent = "", changed = false) {
    try {
      const alert = await api(`/alerts/${encodeURIComponent(item)}`, { asSent: true }); // (its evidence's records)
      const said = notice && unsent ? `${notice} Your note was not sent: “${unsent}”` : notice;
      replace(box, said ? h("p", { class: "error", role: "status", text: said }) : null, ...alertView(alert, allows, load, navigate, unsent));
      if (changed) box.querySelector("h1").focus();
      loadDeliveries(box.querySelector(".deliveries"), alert.id, allows("alerts"));
    } catch (error) {
      replace(box, errorBox(error, load));
    }
  }
}

function alertView(alert, allows, reload, navigate, unsent) {
  const at = Date.parse(alert.first_seen);
  // (its matches and its last window: the window alone left out the matches seen before it; its group's records
  // alone, where the window's every record buried a brute force's source among a busy lake's: a drill)
  const explore = exploreHref({ q: groupSearch(alert.group), range: "", since: Math.min(at, Date.parse(alert.window.start)),
    until: Math.max(Date.parse(alert.last_seen), Date.parse(alert.window.end)) + 1, tz: timeZone(), tail: false });
  const state = { q: "", range: "", tz: timeZone() };
  const go = (changes) => navigate(exploreHref({ ...state, ...aroundMoment(at), ...changes }));
  return [
    h("h1", { tabindex: "-1" }, h("span", { class: `level l-${alert.level}`, text: alert.level }), " ", alert.title),
    h("dl", { class: "facts" },
      fact("Status", alert.status + (alert.status_change ? ` by ${alert.status_change.by} at ${formatTime(Date.parse(alert.status_change.at))}` : "")),
      alert.status_change?.note ? fact("Note", noteShown(alert.status_change)) : null,
      fact("Rule", link(`/ui/rules/${encodeURIComponent(alert.rule_id)}`, alert.rule_title)),
      fact("Matches", String(alert.match_count)),
      fact("First seen", formatTime(Date.parse(alert.first_seen))),
      fact("Last seen", formatTime(Date.parse(alert.last_seen))),
      fact("Window", h("span", {}, `${formatTime(Date.parse(alert.window.start))} → ${formatTime(Date.parse(alert.window.end))} `, link(explore, "open in Explore"))),
      alert.runbook ? fact("Runbook", runbookLink(alert.runbook)) : null,
      alert.tags.length ? fact("Tags", alert.tags.join(", ")) : null),
    allows("alerts") ? statusChange(alert, reload, unsent) : null,
    h("h2", { text: `Evidence (${counted(alert.evidence.length, alert.evidence.every(isRecord) ? "record" : "row")})` }),
    h("ol", { class: "records" }, alert.evidence.map((record) => evidenceRow(record, state, go))),
    alert.query ? [h("h2", { text: "Query" }), h("pre", { class: "plan", tabindex: "0", text: alert.query })] : null,
    h("h2", { text: "Deliveries" }),
    h("div", { class: "deliveries" }, h("p", { class: "progress", text: "Loading deliveries…" })),
  ];
}

// A note as written, but the rule's (a suppression's "load tests (until 2027-12-31T00:00:00.000Z)"), whose times are
// the server's UTC: in the zone of every time on the page, as a server's messages are (timesShown).
function noteShown({ by, note }) {
  return by === BY_RULE ? timesShown(note) : note;
}

// Evidence holds what the rule's query gave: records as the rule saw them (a Sigma rule's, a SQL rule's that
// selects records), each the row of Explore plus a link to Explore around it; or rows of other columns (a SQL
// rule's aggregates: service, n), shown as those columns, with no severity made up for them.
function evidenceRow(evidence, state, go) {
  if (!isRecord(evidence)) return columnsRow(evidence);
  const record = shownAsRecord(evidence);
  // its filters search around its own time (they searched around the alert's first match)
  const around = (changes) => go({ ...aroundMoment(record.timestamp), ...changes });
  const row = recordRow(record, state, Number.isFinite(record.timestamp) ? around : go);
  if (Number.isFinite(record.timestamp) && record.service) {
    row.append(h("p", { class: "small evidence-link" }, link(exploreHref({ ...state, q: term("service", record.service), ...aroundMoment(record.timestamp), tail: false }),
      "See this moment in Explore")));
  }
  return row;
}

// An evidence record is a row of the rule's query, keyed as the lake's columns (log_id, timestamp as ISO-8601 text):
// as Explore's records are (GET /logs/{id}'s logId, timestamp in ms, datetime). Read as epoch ms, the ISO time
// made the link to Explore "since=NaN".
// Only the record's fields: its Copy JSON showed log_id and logId, date, client_id and the rule's own columns.
function shownAsRecord(evidence) {
  const ms = epochMs(evidence.timestamp);
  const record = {
    logId: evidence.logId || evidence.log_id, timestamp: ms, datetime: Number.isFinite(ms) ? new Date(ms).toISOString() : "",
    service: evidence.service, log_type: evidence.log_type || "", severity: evidence.severity || "info",
    message: evidence.message, attributes: evidence.attributes || {},
  };
  for (const id of ["trace_id", "span_id"]) if (evidence[id]) record[id] = evidence[id];
  return record;
}

// A minute either side of a moment (ms), as Explore's range.
function aroundMoment(ms) {
  return { since: ms - 60e3, until: ms + 60e3 };
}

// A time as epoch ms: a number as it is, ISO-8601 text parsed; NaN for anything else.
function epochMs(value) {
  return typeof value === "number" ? value : typeof value === "string" ? Date.parse(value) : NaN;
}

function isRecord(row) {
  return typeof row.message === "string";
}

function columnsRow(row) {
  // (a time as every time on the page: an ISO text, as a SQL rule's rows keep it, was shown raw in UTC)
  const shown = (name, value) => name === "timestamp" && Number.isFinite(epochMs(value)) ? formatTime(epochMs(value))
    : isStructured(value) ? jsonNodes(value) : String(value);
  // (verbatim, as a query's rows: a failing rule's alert holds its error, DuckDB's caret under its "LINE 3: ...")
  return h("li", { class: "evidence-row" },
    h("dl", { class: "facts" }, Object.entries(row).map(([name, value]) => fact(name, shown(name, value), "verbatim"))));
}

// A runbook is a link only when it is a web address: a rule file's `javascript:` must not become one.
function runbookLink(runbook) {
  return /^https?:\/\//i.test(runbook) ? h("a", { href: runbook, rel: "noreferrer", text: runbook }) : runbook;
}

function fact(name, value, className) {
  return [h("dt", { text: name }), h("dd", { class: className }, value)];
}

function keepNote(alertId, text) {
  const notes = JSON.parse(sessionStorage.getItem(NOTES_KEY) || "{}");
  if (text) notes[alertId] = text;
  else delete notes[alertId];
  sessionStorage.setItem(NOTES_KEY, JSON.stringify(notes));
}

function keptNote(alertId) {
  return JSON.parse(sessionStorage.getItem(NOTES_KEY) || "{}")[alertId] || "";
}

function statusChange(alert, reload, unsent) {
  if (alert.status === "resolved") {
    keepNote(alert.id, ""); // (nothing more to say with it)
    return null;
  }
  const note = h("input", { type: "text", name: "note", "aria-label": "Note (optional)", placeholder: "note (optional)", maxlength: 1000,
    value: unsent || keptNote(alert.id), oninput: () => keepNote(alert.id, note.value) });
  const message = h("p", { role: "status" });
  const buttons = [];
  const change = (action) => async () => {
    // One change at a time: a double click sent it twice, and the second's 409 ("already acknowledged by admin")
    // said the person's own change was someone else's
    for (const control of [note, ...buttons]) control.disabled = true;
    try {
      await api(`/alerts/${alert.id}/${action}`, { method: "POST", body: note.value ? { note: note.value } : {} });
      keepNote(alert.id, "");
      reload("", "", true);
    } catch (error) {
      for (const control of [note, ...buttons]) control.disabled = false;
      // Changed meanwhile (by someone else, in another tab): drawn again as it is now, with why (it showed its old
      // status and buttons under the error)
      if (error.status === 409) reload(`${timesShown(error.message)}. The alert is shown as it is now.`, note.value, true);
      // (a change is sent again when asked, not by itself as the pages' reads are: the server may have made it)
      else replace(message, errorBox(error, change(action), "Retry sends the change again."));
    }
  };
  if (alert.status === "open") buttons.push(h("button", { type: "button", class: "primary", text: "Acknowledge", onclick: change("acknowledge") }));
  buttons.push(h("button", { type: "button", text: "Resolve", onclick: change("resolve") }));
  return h("div", { class: "toolbar status-change" }, note, buttons, message);
}

// A dead delivery can be sent again (alerts scope): the server's worker sends it once, attempts reset. The server's
// messages (a destination's answer, a routing problem) are shown verbatim, their lines and spaces kept.
async function loadDeliveries(box, alertId, mayRetry) {
  const reload = () => loadDeliveries(box, alertId, mayRetry);
  try {
    const answer = await api("/alerts/deliveries", { params: { alert: alertId } });
    let deliveries = answer.deliveries;
    if (answer.next_cursor) {
      // Older ones are left out, and a dead one among them (a trigger that later updates wait behind) is the one
      // to retry: every dead one is shown too.
      const dead = await api("/alerts/deliveries", { params: { alert: alertId, state: "dead", limit: 500 } });
      const shown = new Set(deliveries.map((d) => d.id));
      deliveries = deliveries.concat(dead.deliveries.filter((d) => !shown.has(d.id)));
    }
    const problems = [...answer.routing_problems, answer.worker_error].filter(Boolean).map((p) => h("p", { class: "error verbatim", text: p }));
    if (!deliveries.length) {
      replace(box, problems, h("p", { class: "muted", text: "No deliveries: alerting.yml routes this alert nowhere, or delivery has not run yet." }));
      return;
    }
    const message = h("div", { role: "status" });
    // (one retry at a time: a second click's 409, the delivery no longer dead, replaced what the first said)
    const retry = (d) => (event) => whileDisabled(event.currentTarget, async () => {
      try {
        await api(`/alerts/deliveries/${encodeURIComponent(d.id)}/retry`, { method: "POST" });
        await reload(); // (the button stays disabled until it is drawn again, gone or its delivery's new state)
      } catch (error) {
        replace(message, errorBox(error));
      }
    });
    // A delivery waiting behind a dead one of another alert (its dedup key's earlier alert, whose trigger died) leads
    // to that alert's page, where the dead one is, with its Retry: this page offered nothing to do.
    const elsewhere = (ahead) => ahead && ahead.alert_id !== alertId
      ? [" ", link(`/ui/alerts/${encodeURIComponent(ahead.alert_id)}`, `Open the alert of that ${ahead.event}`)] : null;
    const columns = ["Event", "Destination", "State", "Attempts", "Updated", "Last error", ...(mayRetry ? ["Action"] : [])];
    replace(box, problems, message, h("div", { class: "table-wrap", tabindex: "0" }, h("table", { class: "list" },
      h("thead", {}, h("tr", {}, columns.map((t) => h("th", { scope: "col", text: t })))),
      h("tbody", {}, deliveries.map((d) => h("tr", {},
        h("td", { text: d.event }), h("td", { text: d.destination }), h("td", {}, h("span", { class: `state d-${d.state}`, text: d.state })),
        h("td", { class: "num", text: d.attempts }), h("td", { text: formatTime(Date.parse(d.updated)) }), h("td", {}, d.last_error ? h("span", { class: "verbatim", text: d.last_error }) : null, elsewhere(d.waits_for)),
        mayRetry ? h("td", {}, d.retryable ? h("button", { type: "button", class: "small", text: "Retry", "aria-label": `Retry the ${d.event} to ${d.destination}`, onclick: retry(d) }) : null) : null))))),
      answer.next_cursor ? h("p", { class: "muted", text: `The newest ${answer.deliveries.length} deliveries are shown, and every dead one; loglake alerts deliveries --alert ${alertId} lists them all.` }) : null);
  } catch (error) {
    replace(box, errorBox(error, reload));
  }
}
