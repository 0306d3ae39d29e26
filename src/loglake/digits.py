"""Whether text is a plain decimal number, as int() reads it."""


def is_ascii_digits(text: str) -> bool:
    """True for '0'-'9' only. str.isdigit() alone is also true for '²' or '①', which int() refuses (a
    ValueError where a clear error was meant), and for other scripts' digits, which no client means."""
    return text.isascii() and text.isdigit()
