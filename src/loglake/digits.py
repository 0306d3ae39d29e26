"""Whether text is a plain decimal number, as int() reads it; whether a number is one double of its own; a double
as a person reads it."""

import math
import struct
from decimal import Decimal

# From here on, whole numbers are not doubles of their own (2**53 + 1 is read as 2**53): compared as doubles, an id
# would match its neighbours.
EXACT_WHOLE_DOUBLE = 2**53


def same_as_double(number: int | float) -> bool:
    """Whether comparing `number` as a double compares it alone: any float, a whole number below 2**53."""
    return not isinstance(number, int) or abs(number) < EXACT_WHOLE_DOUBLE


def is_ascii_digits(text: str) -> bool:
    """True for '0'-'9' only. str.isdigit() alone is also true for '²' or '①', which int() refuses (a
    ValueError where a clear error was meant), and for other scripts' digits, which no client means."""
    return text.isascii() and text.isdigit()


def number_text(value: float) -> str:
    """A double as a person reads it, as JavaScript (the web UI) writes one: the fewest digits that read back as
    the same double, plain from 1e-7 to 1e21 (a whole one without `.0`: 1e16 is 10000000000000000), else with an
    exponent (1e+21, 1.5e-7); NaN and the infinities as SQL answers name them. Python's str wrote 1e+16 and 1.0."""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    sign, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()  # (repr: the fewest digits)
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + int(exponent)  # the value is 0.<digits> times 10 ** point
    minus = "-" if sign else ""
    if len(digits) <= point <= 21:
        return minus + digits + "0" * (point - len(digits))
    if 0 < point <= 21:
        return f"{minus}{digits[:point]}.{digits[point:]}"
    if -6 < point <= 0:
        return f"{minus}0.{'0' * -point}{digits}"
    fraction = f".{digits[1:]}" if len(digits) > 1 else ""
    return f"{minus}{digits[0]}{fraction}e{'+' if point > 0 else '-'}{abs(point - 1)}"


def single_float(value: float) -> float:
    """A 4-byte float (given as the double it is exactly) as the double of its fewest digits that are that float:
    0.1 for the float nearest 0.1, which is 0.10000000149011612 (at most 9 digits make any one)."""
    if not math.isfinite(value):
        return value
    single = struct.pack("<f", value)
    for digits in range(1, 10):
        shortest = float(f"{value:.{digits}g}")
        if struct.pack("<f", shortest) == single:
            return shortest
    return value
