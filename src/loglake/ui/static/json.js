// JSON read as sent: an integer past 2^53 (a 64-bit id, a time in nanoseconds) became the nearest JavaScript
// number, its last digits changed (9007199254740993 read 9007199254740992), in every view and in Copy JSON.

// Such a number, kept as its text: shown as it (toString), written back into JSON as the number sent (toJSON),
// compared as its value (a BigInt for an integer); a scalar to the views (not an object of fields).
export class ExactNumber {
  constructor(text) {
    this.text = text;
  }
  toString() {
    return this.text;
  }
  toJSON() {
    return JSON.rawJSON(this.text);
  }
  get value() {
    return INTEGER.test(this.text) ? BigInt(this.text) : Number(this.text);
  }
}

// (such an integer has 16 digits or more: an answer without a run of them skips the reviver, which costs)
const LONG_DIGITS = /\d{16}/;
const INTEGER = /^-?\d+$/;
// A number JavaScript writes otherwise (2.0 as 2, 1e21 as 1e+21, 1.50, -0.0, 1E2), or 16 digits or more (its
// digits past a double's): an answer with none skips the reviver
const NOT_AS_JAVASCRIPT_WRITES = /[:,[]\s*(?:-0(?![.\deE])|-?\d+\.\d*0(?!\d)|-?\d+(?:\.\d+)?[eE])|\d(?:\.?\d){15}/;

// JSON.parse, but integers no JavaScript number holds exactly are ExactNumbers (where the browser gives the
// reviver the value's source text, as every current one does; else numbers, as JSON.parse gives them).
// `asSent`: every number JavaScript would write otherwise is one, for views that show what a record holds as
// it was sent (an attribute sent as 2.0 showed as 2); not for answers whose numbers a page computes with.
export function parseJson(text, { asSent = false } = {}) {
  if (typeof JSON.rawJSON !== "function" || !(asSent ? NOT_AS_JAVASCRIPT_WRITES : LONG_DIGITS).test(text)) return JSON.parse(text);
  const exact = asSent ? (value, source) => String(value) !== source
    : (value, source) => !Number.isSafeInteger(value) && INTEGER.test(source);
  return JSON.parse(text, (key, value, context) =>
    typeof value === "number" && context?.source !== undefined && exact(value, context.source)
      ? new ExactNumber(context.source) : value);
}

// A value that is a JSON object or array, not a scalar (an ExactNumber is one).
export function isStructured(value) {
  return value !== null && typeof value === "object" && !(value instanceof ExactNumber);
}
