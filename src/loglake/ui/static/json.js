// JSON read as sent: an integer past 2^53 (a 64-bit id, a time in nanoseconds) became the nearest JavaScript
// number, its last digits changed (9007199254740993 read 9007199254740992), in every view and in Copy JSON.

// Such an integer, kept as its digits: shown as them (toString), written back into JSON as the number sent
// (toJSON), compared as a BigInt (value); a scalar to the views (not an object of fields).
export class ExactInteger {
  constructor(digits) {
    this.digits = digits;
  }
  toString() {
    return this.digits;
  }
  toJSON() {
    return JSON.rawJSON(this.digits);
  }
  get value() {
    return BigInt(this.digits);
  }
}

// (such an integer has 16 digits or more: an answer without a run of them skips the reviver, which costs)
const LONG_DIGITS = /\d{16}/;
const INTEGER = /^-?\d+$/;

// JSON.parse, but integers no JavaScript number holds exactly are ExactIntegers (where the browser gives the
// reviver the value's source text, as every current one does; else numbers, as JSON.parse gives them).
export function parseJson(text) {
  if (typeof JSON.rawJSON !== "function" || !LONG_DIGITS.test(text)) return JSON.parse(text);
  return JSON.parse(text, (key, value, context) =>
    typeof value === "number" && !Number.isSafeInteger(value) && INTEGER.test(context?.source ?? "")
      ? new ExactInteger(context.source) : value);
}

// A value that is a JSON object or array, not a scalar (an ExactInteger is one).
export function isStructured(value) {
  return value !== null && typeof value === "object" && !(value instanceof ExactInteger);
}
