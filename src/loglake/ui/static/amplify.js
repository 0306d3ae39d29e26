// Amplify: per app, the saved reports over a chosen range (charts for the ones per day, tables for all),
// and the collection's status: the schedule, each app's watermark and the last runs with their errors.
import { api, errorBox, url } from "./api.js";
import { stackedBars, utcDayBar, utcDayTick } from "./chart.js";
import { counted, formatBytes, formatTime, h, replace } from "./dom.js";

const RANGES = ["1d", "7d", "30d", "90d"];

export function render(main, { params, navigate }) {
  const chosen = { app: params.get("app") || "", range: RANGES.includes(params.get("range")) ? params.get("range") : "7d" };
  const go = (changes) => navigate(url("/ui/amplify", { ...chosen, ...changes }));
  const status = h("section", { "aria-label": "Collection" }, h("p", { class: "progress", text: "Loading the collection's status…" }));
  const reports = h("section", { "aria-label": "Reports", "aria-live": "polite" });
  replace(main, h("h1", { text: "Amplify" }), status, reports);
  const left = new AbortController();
  loadStatus(status, reports, chosen, go, left.signal);
  // (the page's cleanup, as the other pages': leaving it stops its reports on the server, each a query over the
  // range's access logs that ran on to its end for a page no longer shown, and a page left is not drawn)
  return () => left.abort();
}

async function loadStatus(box, reports, chosen, go, signal) {
  try {
    const [answer, { apps }] = await Promise.all([api("/amplify/status", { signal }), api("/amplify/apps", { signal })]);
    const schedule = answer.schedule;
    const app = chosen.app || apps[0] || "";
    // A link's app with no rows (a bookmark, a typo) is the one chosen, the server's 404 under it: the picker showed
    // the first app over that error, and picking it was no change, so nothing happened.
    const choices = app && !apps.includes(app) ? [app, ...apps] : apps;
    replace(box,
      h("div", { class: "cards" },
        h("div", { class: "card" }, h("h2", { text: "Collection" }),
          schedule ? [h("p", { text: `Schedule: ${schedule.schedule}` }), h("p", { text: `Next run: ${schedule.next_run ? formatTime(Date.parse(schedule.next_run)) : "–"}` }),
            schedule.last_error ? h("p", { class: "error verbatim", text: schedule.last_error }) : null]
            : h("p", { class: "muted", text: "This server does not collect on a schedule." })),
        answer.apps.map((a) => h("div", { class: "card" }, h("h2", { text: a.app }), h("p", { class: "muted small", text: `collected until ${formatTime(Date.parse(a.collected_until))}` })))),
      schedule ? null : h("p", { class: "muted" }, howToCollect(answer.schedule_setting)),
      runsTable(answer.runs),
      choices.length ? h("div", { class: "toolbar" },
        h("select", { "aria-label": "App", onchange: (e) => go({ app: e.target.value }) }, choices.map((name) => h("option", { value: name, text: name, selected: name === app }))),
        h("select", { "aria-label": "Range", onchange: (e) => go({ range: e.target.value }) }, RANGES.map((r) => h("option", { value: r, text: `last ${r}`, selected: r === chosen.range }))))
        : null);
    if (app) loadReports(reports, app, chosen.range, signal);
    else replace(reports, h("div", { class: "empty" }, h("p", { text: "No Amplify app has access logs in the lake yet." }),
      h("p", { class: "muted" }, howToCollect(answer.schedule_setting), " Or load an export with ", h("code", { text: "loglake amplify import" }), ".")));
  } catch (error) {
    if (error.name !== "AbortError") replace(box, errorBox(error, () => loadStatus(box, reports, chosen, go, signal)));
  }
}

// How apps get collected (README, "Amplify Hosting access logs"): the collector's JSON configuration, given
// to the server by the setting it names (`setting`: its flag and environment variable), or to the command.
function howToCollect(setting) {
  return ["Name the apps in a JSON configuration (as examples/amplify/amplify.json) and start the server with ",
    h("code", { text: `${setting.flag} amplify.json` }), ` (or ${setting.env}) to collect on its schedule, or run `,
    h("code", { text: "loglake amplify collect --config amplify.json" }), "."];
}

// The server's messages (a failed window's AWS error, a query's) keep their lines and spaces, as a rule's run's error
// does: one a line.
function runsTable(runs) {
  if (!runs.length) return h("p", { class: "muted", text: "No collection has run yet." });
  return h("details", {}, h("summary", { text: `Last ${counted(runs.length, "collection run")}` }), h("div", { class: "table-wrap", tabindex: "0" }, h("table", { class: "list" },
    h("thead", {}, h("tr", {}, ["Started", "App", "Windows ok / failed", "Rows", "Downloaded", "Errors"].map((t) => h("th", { scope: "col", class: t === "Rows" || t === "Downloaded" ? "num" : "", text: t })))),
    h("tbody", {}, runs.flatMap((run) => run.unreadable ? [h("tr", {}, h("td", { colspan: 6, class: "error verbatim", text: run.unreadable }))]
      : run.apps.map((a) => h("tr", {}, h("td", { text: formatTime(Date.parse(run.started)) }), h("td", { text: a.app }),
        h("td", { text: `${a.windows_ok} / ${a.windows_failed}` }), h("td", { class: "num", text: a.rows.toLocaleString() }),
        h("td", { class: "num", text: formatBytes(a.bytes) }), h("td", { class: run.error || a.errors.length ? "error verbatim" : "", text: [run.error, ...a.errors].filter(Boolean).join("\n") }))))))));
}

async function loadReports(box, app, range, signal) {
  replace(box, h("p", { class: "progress", text: `Running the reports on ${app}…` }));
  try {
    const answer = await api("/amplify/reports", { params: { app, since: range }, signal });
    replace(box, answer.reports.map(report));
  } catch (error) {
    if (error.name !== "AbortError") replace(box, errorBox(error, () => loadReports(box, app, range, signal)));
  }
}

// A saved query's result: a chart when its rows are per date, and the rows as a table. The chart draws the
// report's measure, its last numeric column (bytes, hit_percent): the first, the requests beside it, was drawn
// under "Bytes served per day" and "Cache hit ratio per day" alike.
// A `date` is a UTC day, the lake's partition (as a backtest's days): the server counted the day's rows, which the
// page cannot count again in another zone (a local day holds parts of two UTC days). So its days say UTC, beside
// the page's times in the zone chosen.
function report(result) {
  const names = result.columns.map((c) => c.name);
  const dateAt = names.indexOf("date");
  const valueAt = names.findLastIndex((n, i) => i !== dateAt && result.rows.some((row) => typeof row[i] === "number"));
  const chart = dateAt >= 0 && valueAt >= 0 && result.rows.length
    ? stackedBars(result.rows.map((row) => utcDayBar(row[dateAt], [["info", row[valueAt]]])),
      { label: names[valueAt], height: 100, perBar: true, tickFormat: utcDayTick,
        valueFormat: names[valueAt] === "bytes" ? formatBytes : undefined })
    : null;
  return h("article", { class: "report" }, h("h2", { text: result.title }),
    result.rows.length ? [chart, h("div", { class: "table-wrap", tabindex: "0" }, h("table", { class: "list" },
      h("thead", {}, h("tr", {}, names.map((n, i) => h("th", { scope: "col", class: result.rows.some((row) => typeof row[i] === "number") ? "num" : "", text: i === dateAt ? `${n} (UTC)` : n })))),
      h("tbody", {}, result.rows.map((row) => h("tr", {}, row.map((v, i) => h("td", { class: typeof v === "number" ? "num" : "",
        text: v === null ? "–" : names[i] === "bytes" ? formatBytes(v) : String(v) })))))))]
      : h("p", { class: "muted", text: "No requests in this range." }));
}
