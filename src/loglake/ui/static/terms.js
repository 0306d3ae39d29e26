// The search language (lake/search_terms.py) as the UI writes it: a field's or an attribute's filter
// term, and a term added to a query.

import { isStructured } from "./json.js";

export const FIELDS = ["service", "severity", "log_type", "message", "client_id"];
// Names the search language reads as a record's own field, not an attribute
export const RECORD_FIELDS = new Set([...FIELDS, "level", "trace_id", "span_id"]);

// A filter term for a field's value (a record field's name, or attributeKey's text), the value quoted when
// it holds anything but plain word characters; null for a value no search can name (a double quote, nothing).
export function term(field, value, negated = false) {
  const text = String(value);
  // (a list or an object: no search names it; as text it was "a,b,[object Object]")
  if (field === null || value === null || isStructured(value) || !text || text.includes('"')) return null;
  const quoted = /^[\w.@\-/]+$/.test(text) ? text : `"${text}"`;
  return `${negated ? "-" : ""}${field}:${quoted}`;
}

// An attribute's key path (its keys from the outermost) as a search names it: the keys joined by dots,
// each quoted where the syntax needs it: one holding a dot below the top (`http."x.y"`; at the top,
// `host.name` reads OTLP's flat key), a space, a colon, a parenthesis or a *, or a top key named like a
// record field (`"service"`). Null for a key no search can name (a double quote, an empty key).
export function attributeKey(path) {
  if (path.some((key) => !key || key.includes('"'))) return null;
  const bare = (key) => /^[^\s":()*.-][^\s":()*.]*$/.test(key);
  if (path.length === 1) {
    const [key] = path;
    return !RECORD_FIELDS.has(key) && key.split(".").every(bare) ? key : `"${key}"`;
  }
  return path.map((key) => (bare(key) ? key : `"${key}"`)).join(".");
}

// A filter for the records of an alert's group (its rule's group-by values: `attributes.user`, `service`): a term
// for each that a search can name, all of them to match; "" for none.
export function groupSearch(group) {
  const terms = Object.entries(group || {}).map(([name, value]) => {
    const field = name.startsWith("attributes.") ? attributeKey(name.slice("attributes.".length).split("."))
      : RECORD_FIELDS.has(name) ? name : null;  // (a SQL rule's own column names no record field)
    return field === null ? null : term(field, value);
  });
  return terms.filter(Boolean).join(" ");
}

// The query and one more term that must match too: a query with an OR outside parentheses is grouped
// first, as `a OR b c` would take c for b alone (AND binds tighter than OR).
export function withTerm(q, t) {
  const query = q.trim();
  if (!query) return t;
  return hasOuterOr(query) ? `(${query}) ${t}` : `${query} ${t}`;
}

function hasOuterOr(q) {
  let depth = 0;
  // Quoted text, a parenthesis, or a run of other characters: the tokens of the search language.
  for (const [token] of q.matchAll(/"[^"]*"?|[()]|[^\s()"]+/g)) {
    if (token === "(") depth += 1;
    else if (token === ")") depth -= 1;
    else if (token === "OR" && depth === 0) return true;
  }
  return false;
}
