// SQL: the tables and their columns (click to insert), an editor with highlighting, Ctrl/Cmd+Enter to
// run, a sortable grid with resizable columns where NULL is not an empty string, the query's cost,
// EXPLAIN, downloads as CSV/JSON/NDJSON, and a history kept in this browser.
import { api, errorBox } from "./api.js";
import { counted, download, formatBytes, h, jsonNodes, replace } from "./dom.js";
import { ExactNumber, isStructured } from "./json.js";

const HISTORY_KEY = "loglake-sql-history";
// sessionStorage: the query in the editor, run or not, so that a look at another page loses nothing written
const DRAFT_KEY = "loglake-sql-draft";
const HISTORY_SIZE = 50;
const KEYWORDS = new Set(("select from where group by order having limit offset as and or not in is null like ilike between " +
  "case when then else end join left right inner outer full on distinct count sum avg min max with union all " +
  "desc asc explain interval cast true false over partition").split(" "));

export function render(main, { params }) {
  const sql = params.get("sql") || sessionStorage.getItem(DRAFT_KEY) || localHistory()[0] ||
    "SELECT service, severity, count(*) AS records\nFROM logs\nGROUP BY ALL\nORDER BY records DESC";
  const editor = sqlEditor(sql, (text) => sessionStorage.setItem(DRAFT_KEY, text));
  const output = h("section", { class: "sql-output", "aria-label": "Result", "aria-live": "polite" });
  const history = h("ol", { class: "history" });
  const tables = h("nav", { class: "tables", "aria-label": "Tables" }, h("p", { class: "progress", text: "Loading tables…" }));
  const runButton = h("button", { type: "button", class: "primary", text: "Run", title: "Ctrl+Enter", onclick: () => run(false) });
  const explainButton = h("button", { type: "button", text: "Explain", onclick: () => run(true) });
  // One query at a time: each click ran another (five took the server's query slots from everyone for
  // their 30 s, and an older one's answer replaced the newest's). Cancel, or leaving the page, ends the
  // request, and the server stops a query whose client has gone.
  let running = null;
  const run = async (explain) => {
    if (running) return;
    running = new AbortController();
    runButton.disabled = explainButton.disabled = true;
    try {
      await runQuery(editor.textarea.value, explain, output, history, running, () => run(explain));
    } finally {
      running = null;
      runButton.disabled = explainButton.disabled = false;
    }
  };
  editor.textarea.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(false); }
  });
  replace(main, h("div", { class: "sql-page" },
    h("aside", { class: "sidebar" }, h("h2", { text: "Tables" }), tables, h("h2", { text: "History" }), history),
    h("div", { class: "sql-main" },
      h("h1", { text: "SQL" }),
      editor.root,
      h("div", { class: "toolbar" },
        runButton,
        explainButton,
        h("span", { class: "muted small", text: "Ctrl+Enter (⌘+Enter) runs the query" })),
      output)));
  drawHistory(history, editor);
  loadTables(tables, editor);
  return () => running?.abort(); // (the page's cleanup: leaving it ends the query)
}

// `changed` is told the text at each change (typed, inserted, taken from the history) and at first.
function sqlEditor(text, changed) {
  const code = h("code");
  const textarea = h("textarea", { class: "editor", spellcheck: "false", "aria-label": "SQL query", rows: 8, autocomplete: "off" });
  textarea.value = text;
  const highlight = () => {
    replace(code, highlighted(textarea.value + "\n"));
    changed(textarea.value);
    pre.scrollTop = textarea.scrollTop;
    pre.scrollLeft = textarea.scrollLeft;
  };
  const pre = h("pre", { class: "highlight", "aria-hidden": "true" }, code);
  textarea.addEventListener("input", highlight);
  textarea.addEventListener("scroll", () => { pre.scrollTop = textarea.scrollTop; pre.scrollLeft = textarea.scrollLeft; });
  highlight();
  return { root: h("div", { class: "editor-wrap" }, pre, textarea), textarea, refresh: highlight };
}

// Tokens of SQL as spans: keywords, strings, numbers, comments; the rest as text. Text nodes, the text as typed
// (not as printable() writes it): the highlight lies over the editor's own text, character for character.
export function highlighted(text) {
  const parts = [];
  const token = /(--[^\n]*)|('(?:[^']|'')*'?)|("(?:[^"]|"")*"?)|(\b\d+(?:\.\d+)?\b)|([A-Za-z_]\w*)|([\s\S])/g;
  for (const [all, comment, string, quoted, number, word] of text.matchAll(token)) {
    const typed = document.createTextNode(all);
    if (comment) parts.push(h("span", { class: "t-comment" }, typed));
    else if (string) parts.push(h("span", { class: "t-string" }, typed));
    else if (quoted) parts.push(h("span", { class: "t-ident" }, typed));
    else if (number) parts.push(h("span", { class: "t-number" }, typed));
    else if (word && KEYWORDS.has(word.toLowerCase())) parts.push(h("span", { class: "t-keyword" }, typed));
    else parts.push(typed);
  }
  return parts;
}

function insert(editor, text) {
  const { textarea } = editor;
  const [start, end] = [textarea.selectionStart, textarea.selectionEnd];
  // a space after a word or a literal the caret follows (`'2026-12-05'log_id` read as no SQL)
  const spaced = start > 0 && /[\w'")\]]/.test(textarea.value[start - 1]) ? ` ${text}` : text;
  textarea.setRangeText(spaced, start, end, "end");
  editor.refresh();
  textarea.focus();
}

async function loadTables(box, editor) {
  try {
    const { tables } = await api("/tables");
    replace(box, h("ul", {}, tables.map((table) => h("li", {},
      h("details", {},
        h("summary", { text: table.name }),
        h("button", { type: "button", class: "link small", text: `insert ${table.name}`, onclick: () => insert(editor, table.name) }),
        h("ul", { class: "columns" }, table.columns.map((column) => h("li", {},
          h("button", { type: "button", class: "link", text: column.name, title: `Insert ${column.name}`, onclick: () => insert(editor, column.name) }),
          h("span", { class: "muted small", text: ` ${column.type}` })))))))));
  } catch (error) {
    replace(box, errorBox(error, () => loadTables(box, editor)));
  }
}

function localHistory() {
  try {
    return JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]");
  } catch {
    return [];
  }
}

function remember(sql) {
  const kept = [sql, ...localHistory().filter((s) => s !== sql)].slice(0, HISTORY_SIZE);
  localStorage.setItem(HISTORY_KEY, JSON.stringify(kept));
}

function drawHistory(box, editor) {
  const items = localHistory();
  replace(box, items.length ? items.map((sql) => h("li", {}, h("button", { type: "button", class: "link history-item", title: sql, text: sql.replace(/\s+/g, " "),
    onclick: () => { editor.textarea.value = sql; editor.refresh(); editor.textarea.focus(); } })))
    : h("li", { class: "muted small", text: "Queries you run are kept here, in this browser only." }));
  box.editor = editor;
}

async function runQuery(sql, explain, output, history, controller, retry) {
  const cancel = h("button", { type: "button", text: "Cancel", onclick: () => controller.abort() });
  replace(output, h("p", { class: "progress" }, explain ? "Planning… " : "Running… ", cancel));
  try {
    const result = await query({ sql, explain }, controller.signal);
    remember(sql);
    drawHistory(history, history.editor);
    if (explain) replace(output, h("h2", { text: "Plan" }), h("pre", { class: "plan", tabindex: "0", text: result.plan }));
    else replace(output, resultView(result));
  } catch (error) {
    if (error.name === "AbortError") replace(output, h("p", { class: "muted", text: "Cancelled: the server stopped the query." }));
    else replace(output, errorBox(error, retry));
  }
}

// POST /query, its numbers read as sent: the grid and the downloads show a value as the answer writes it, as
// `loglake query` does (a DOUBLE's 2.0 showed and downloaded as 2, 1e16 as 10000000000000000); the grid's sort
// compares them as numbers (ExactNumber.value). For resultView, which is all a page does with the answer.
export function query(body, signal) {
  return api("/query", { method: "POST", body, signal, asSent: true });
}

export function resultView(result) {
  const stats = h("p", { class: "stats" },
    `${counted(result.row_count, "row")}${result.truncated ? " (truncated: add a LIMIT or aggregate)" : ""} · `,
    // (Number: read as sent, an elapsed_ms of 8.0 is an ExactNumber)
    `${Number(result.elapsed_ms).toFixed(1)} ms · ${formatBytes(result.bytes_scanned)} scanned in ${counted(result.files_scanned ?? 0, "file")}`);
  const downloads = h("div", { class: "toolbar" },
    h("span", { text: "Download:" }),
    h("button", { type: "button", text: "CSV", onclick: () => download("result.csv", "text/csv", toCsv(result)) }),
    h("button", { type: "button", text: "JSON", onclick: () => download("result.json", "application/json", JSON.stringify(toObjects(result))) }),
    h("button", { type: "button", text: "NDJSON", onclick: () => download("result.ndjson", "application/x-ndjson", toObjects(result).map((o) => JSON.stringify(o) + "\n").join("")) }));
  if (!result.row_count) {
    return [stats, h("p", { class: "empty", text: "The query returned no rows: check its WHERE clause and time bounds (SELECT count(*) shows how many rows a table holds)." })];
  }
  return [stats, downloads, grid(result)];
}

function toObjects(result) {
  const names = uniqueNames(result.columns);
  return result.rows.map((row) => Object.fromEntries(names.map((name, i) => [name, row[i]])));
}

// Columns of one name (a join's two `service`s) would be one key of an object, holding the last one's value:
// each later one gets a suffix as DuckDB names a subquery's columns (a, a_1, and a_1_1 when a_1 is taken).
function uniqueNames(columns) {
  const taken = new Set();
  return columns.map(({ name }) => {
    let unique = name;
    for (let n = 1; taken.has(unique); n++) unique = `${name}_${n}`;
    taken.add(unique);
    return unique;
  });
}

// RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled. NULL is an empty field and
// the empty string "" (both were an empty field): as PostgreSQL's COPY ... CSV and DuckDB write and read them.
function toCsv(result) {
  const field = (v) => {
    if (v === null) return "";
    const text = isStructured(v) ? JSON.stringify(v) : String(v);
    return text === "" || /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  return [result.columns.map((c) => field(c.name)), ...result.rows.map((row) => row.map(field))].map((r) => r.join(",") + "\r\n").join("");
}

// Rows are drawn GRID_PAGE at a time (all 10,000 of a capped answer took the page 2 s to draw, and as long to
// sort); sorting sorts them all and draws the first page again.
const GRID_PAGE = 500;
// The SQL types whose values are numbers (a column's type as the answer names it: DECIMAL(18,3), BIGINT...).
const NUMBER_TYPE = /^(U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)|FLOAT|DOUBLE|REAL|DECIMAL)\b/;

function grid(result) {
  const body = h("tbody");
  const more = h("div", { class: "more" });
  let order = { column: -1, descending: false };
  let rows = [], shown = 0; // (in the order shown)
  // A number column's values are numbers, or text where JSON has none: a DECIMAL's exact digits, a double's "NaN"
  // and "Infinity"; they align and sort as the numbers they are (as text "10.5" sorted before "9.2").
  const numeric = result.columns.map((column) => NUMBER_TYPE.test(column.type));
  const cell = (v, i) => v === null ? h("td", { class: "null", text: "NULL" })
    : h("td", { class: numeric[i] || typeof v === "number" || v instanceof ExactNumber ? "num" : "" },
      isStructured(v) ? jsonNodes(v) : String(v));
  const drawMore = () => {
    const next = rows.slice(shown, shown + GRID_PAGE);
    body.append(...next.map((row) => h("tr", {}, row.map(cell))));
    shown += next.length;
    const left = rows.length - shown;
    replace(more, left > 0 ? h("button", { type: "button", text: `Show ${Math.min(GRID_PAGE, left).toLocaleString()} more (${counted(left, "row")} not shown)`,
      onclick: drawMore }) : null);
  };
  const draw = () => {
    rows = [...result.rows];
    if (order.column >= 0) {
      const i = order.column, sign = order.descending ? -1 : 1;
      // (a BigInt compares with numbers as numbers; a number's text is its number, NaN after every other, as SQL)
      const key = (v) => v instanceof ExactNumber ? v.value : numeric[i] && typeof v === "string" ? Number(v) : v;
      const nan = (v) => typeof v === "number" && Number.isNaN(v);
      rows.sort((a, b) => {
        const x = key(a[i]), y = key(b[i]); // (equal BigInts are ===; two ExactNumbers of one value are not)
        if (x === y || (nan(x) && nan(y))) return 0;
        if (x === null || y === null) return x === null ? 1 : -1;
        if (nan(x) || nan(y)) return nan(x) ? sign : -sign;
        return x < y ? -sign : sign;
      });
    }
    replace(body);
    shown = 0;
    drawMore();
  };
  const headers = result.columns.map((column, i) => {
    const th = h("th", { scope: "col", "aria-sort": "none" });
    th.append(h("div", { class: "resizable" }, h("button", { type: "button", class: "link", title: `Sort by ${column.name}`, onclick: () => {
      order = { column: i, descending: order.column === i && !order.descending };
      for (const other of headers) other.setAttribute("aria-sort", "none");
      th.setAttribute("aria-sort", order.descending ? "descending" : "ascending");
      draw();
    } }, column.name), h("span", { class: "muted small", text: ` ${column.type}` })));
    return th;
  });
  draw();
  return [h("div", { class: "grid-wrap", tabindex: "0", role: "region", "aria-label": "Result rows" },
    h("table", { class: "grid" }, h("thead", {}, h("tr", {}, headers)), body)), more];
}
