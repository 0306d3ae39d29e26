// Rules: each rule with its schedule, last run and its matches, errors and whether it is enabled; a rule's page
// with its source, the SQL of a run, its recent runs, its tests run on demand and a backtest per day.
import { api, errorBox } from "./api.js";
import { stackedBars, utcDayBar, utcDayTick } from "./chart.js";
import { counted, formatTime, h, link, replace, warningsList } from "./dom.js";

export function render(main, context) {
  const left = new AbortController();
  if (context.item) drawRule(main, context.item, left.signal);
  else drawList(main, left.signal);
  // (the page's cleanup: leaving it stops its tests or backtest on the server, and a page left is not drawn: a slow
  // answer drew the rules over the page gone to meanwhile, whose address and navigation said Alerts)
  return () => left.abort();
}

// Each call's signal, aborting the call before it (and all once the page is left): one backtest, one run of the
// tests at a time. A backtest asked for again (another period) ran beside the first, and whichever answered last
// was drawn: a 30 d backtest's time-out replaced the 1 d one asked for after it.
function oneAtATime(left) {
  let running = null;
  return () => {
    running?.abort();
    running = new AbortController();
    return AbortSignal.any([left, running.signal]);
  };
}

const when = (iso) => (iso ? formatTime(Date.parse(iso)) : "never");

async function drawList(main, left) {
  replace(main, h("h1", { text: "Rules" }), h("p", { class: "progress", text: "Loading rules…" }));
  try {
    const { folder, rules, problems } = await api("/rules", { signal: left });
    replace(main, h("h1", { text: "Rules" }), h("p", { class: "muted", text: `From ${folder}` }),
      problems.map((p) => h("p", { class: "error-box", text: p })),
      warningsList(rules.flatMap((rule) => rule.warnings)),
      rules.length ? h("div", { class: "table-wrap", tabindex: "0" }, h("table", { class: "list" },
        h("thead", {}, h("tr", {}, ["Level", "Rule", "Schedule", "Enabled", "Last run", "Last run matches", "Errors in a row"].map((t) => h("th", { scope: "col", text: t })))),
        h("tbody", {}, rules.map((rule) => h("tr", {},
          h("td", {}, h("span", { class: `level l-${rule.level}`, text: rule.level })),
          h("td", {}, link(`/ui/rules/${encodeURIComponent(rule.id)}`, rule.title)),
          h("td", { text: rule.schedule }),
          h("td", { text: rule.enabled ? "yes" : "no" }),
          h("td", { text: rule.last_run ? `${when(rule.last_run.finished)} (${rule.last_run.outcome})` : "never" }),
          h("td", { class: "num", text: rule.last_run?.matches ?? "" }),
          h("td", { class: rule.failures ? "num error" : "num", text: rule.failures }))))))
        : h("div", { class: "empty" }, h("p", { text: "No rules are loaded." }),
          h("p", { class: "muted" }, "Copy the starter pack into the rules folder with ", h("code", { text: "loglake rules init" }), ", or write your own.")));
  } catch (error) {
    if (error.name !== "AbortError") replace(main, h("h1", { text: "Rules" }), errorBox(error, () => drawList(main, left)));
  }
}

async function drawRule(main, id, left) {
  replace(main, h("p", {}, link("/ui/rules", "← Rules")), h("p", { class: "progress", text: "Loading the rule…" }));
  try {
    const rule = await api(`/rules/${encodeURIComponent(id)}`, { signal: left });
    const tests = h("div", { "aria-live": "polite" });
    const backtest = h("div", { "aria-live": "polite" });
    const chosen = backtestPeriod(rule.interval_seconds);
    const [testsCall, backtestCall] = [oneAtATime(left), oneAtATime(left)];
    const days = h("select", { "aria-label": "Backtest period", name: "period" },
      ["1d", "7d", "30d"].map((d) => h("option", { value: d, text: `last ${d}`, selected: d === chosen })));
    replace(main, h("p", {}, link("/ui/rules", "← Rules")),
      h("h1", {}, h("span", { class: `level l-${rule.level}`, text: rule.level }), " ", rule.title),
      rule.description ? h("p", { text: rule.description }) : null,
      warningsList(rule.warnings),
      h("dl", { class: "facts" },
        [["Kind", rule.kind], ["Schedule", rule.timing],
          ["Enabled", rule.enabled ? "yes" : "no"], ["File", rule.file], ["Windows evaluated until", when(rule.window_end)],
          ["Errors in a row", String(rule.failures)]].map(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })])),
      h("div", { class: "toolbar" },
        h("button", { type: "button", text: `Run its ${counted(rule.tests, "test")}`, disabled: !rule.tests, onclick: () => runTests(rule.id, tests, testsCall()) }),
        days, h("button", { type: "button", class: "primary", text: "Backtest", onclick: () => runBacktest(rule.id, days.value, backtest, backtestCall()) }),
        link(`/ui/alerts?rule=${encodeURIComponent(rule.id)}`, "Its alerts")),
      tests, backtest,
      h("h2", { text: "Recent runs" }), runsTable(rule.runs),
      h("h2", { text: "SQL of a run" }), h("pre", { class: "plan", tabindex: "0", text: rule.sql }),
      h("h2", { text: "Source" }), h("pre", { class: "plan", tabindex: "0", text: rule.source }));
  } catch (error) {
    if (error.name !== "AbortError") replace(main, h("p", {}, link("/ui/rules", "← Rules")), errorBox(error, () => drawRule(main, id, left)));
  }
}

function runsTable(runs) {
  if (!runs.length) return h("p", { class: "muted", text: "No runs yet: the server runs the rule on its schedule." });
  return h("div", { class: "table-wrap", tabindex: "0" }, h("table", { class: "list" },
    h("thead", {}, h("tr", {}, ["Window", "Outcome", "Rows read", "Matches", "New alerts", "Took"].map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, runs.map((run) => h("tr", {},
      h("td", { text: `${when(run.since)} → ${when(run.until)}` }),
      h("td", { class: run.outcome === "ok" ? "" : "error verbatim", text: run.error ? `${run.outcome}${attempts(run)}: ${run.error}` : run.outcome }),
      h("td", { class: "num", text: run.rows_scanned?.toLocaleString() ?? "" }),
      h("td", { class: "num", text: run.matches ?? "" }),
      h("td", { class: "num", text: run.new_alerts ?? "" }),
      h("td", { class: "num", text: run.duration_ms === null ? "" : `${Math.round(run.duration_ms)} ms` }))))));
}

// A record of failures in a row with one error (the server keeps one, not a record per failure): how many, since when.
const attempts = (run) => (run.attempts > 1 ? ` (${run.attempts} attempts${run.first_started ? `, the first ${when(run.first_started)}` : ""})` : "");

async function runTests(id, box, signal) {
  replace(box, h("p", { class: "progress", text: "Running the tests in a throwaway loglake…" }));
  try {
    const result = await api(`/rules/${encodeURIComponent(id)}/test`, { method: "POST", signal });
    replace(box, h("h2", { text: `Tests: ${result.passed} passed, ${result.failed} failed` }),
      h("ul", {}, result.tests.map((t) => h("li", { class: t.passed ? "" : "error" }, `${t.passed ? "✓" : "✗"} ${t.name}`,
        t.failures.length ? h("ul", {}, t.failures.map((f) => h("li", { class: "verbatim", text: f }))) : null))));
  } catch (error) {
    if (error.name !== "AbortError") replace(box, errorBox(error, () => runTests(id, box, signal)));
  }
}

// The period a backtest starts with: a week, or a day for a rule that runs more often than every 5 minutes or on
// a cron schedule. A backtest runs window by window (a few ms each) within the server's 30 s: a week of a
// 1-minute rule is 10,080 windows, which ran out of time (a new user's trial).
function backtestPeriod(intervalSeconds) {
  return intervalSeconds >= 300 ? "7d" : "1d";  // (null: a cron schedule)
}

async function runBacktest(id, period, box, signal) {
  replace(box, h("p", { class: "progress", text: `Replaying the last ${period}…` }));
  try {
    const report = await api(`/rules/${encodeURIComponent(id)}/backtest`, { method: "POST", body: { since: period }, signal });
    const bars = report.days.map((d) => utcDayBar(d.day, [["critical", d.alerts, "alerts"], ["warning", d.suppressed, "suppressed"]]));
    replace(box, h("h2", { text: `Backtest: ${counted(report.alerts, "alert")}, ${counted(report.matches, "match", "matches")}, ${report.suppressed} suppressed over ${counted(report.windows, "window")}` }),
      h("p", { class: "legend" }, h("span", { class: "key s-critical", text: "alerts" }), h("span", { class: "key s-warning", text: "suppressed" })),
      stackedBars(bars, { label: "alerts raised or suppressed", one: "alert raised or suppressed", height: 110, perBar: true, tickFormat: utcDayTick }),
      h("div", { class: "table-wrap", tabindex: "0" }, h("table", { class: "list backtest" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "Day (UTC)" }),
          ["Windows", "Matches", "Alerts", "Suppressed"].map((t) => h("th", { scope: "col", class: "num", text: t })))),
        h("tbody", {}, report.days.map((d) => h("tr", {}, h("td", { text: d.day }),
          [d.windows, d.matches, d.alerts, d.suppressed].map((n) => h("td", { class: "num", text: n.toLocaleString() }))))))),
      h("p", { class: "muted small", text: `${counted(report.queries, "query", "queries")} read ${counted(report.rows_scanned, "row")} in ${(report.elapsed_ms / 1000).toFixed(1)} s${report.truncated ? "; some matches are missing (a day passed the engine's row cap)" : ""}` }));
  } catch (error) {
    if (error.name !== "AbortError") replace(box, errorBox(error, () => runBacktest(id, period, box, signal)));
  }
}
