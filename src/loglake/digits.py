"""Whether text is a plain decimal number, as int() reads it; whether a number is one double of its own."""

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
