"""A network (Sigma's `|cidr`) as a regular expression matching exactly the text of its addresses.

pySigma's own expansion of a network is text prefixes with wildcards (`10.*` for 10.0.0.0/8, `*` for
0.0.0.0/0), which match text that is no address at all, or of the other family (`*` matches `fe80::1`),
`10.1.2.3:443` and `10.0.0.999`, and miss an IPv6 address written with leading zeros or `::` elsewhere. The
pattern here matches what Python's `ipaddress` takes as an address of the network, and nothing else:

- IPv4: four decimal octets 0-255, without leading zeros (which some parsers read as octal);
- IPv6: eight groups of 1-4 hex digits in any case, one `::` standing for one or more zero groups, the last
  two groups optionally as an IPv4 address (`::ffff:10.1.2.3`, which is IPv6: not in 10.0.0.0/8), and an
  optional zone (`fe80::1%eth0`, its characters as RFC 6874 allows them).

The pattern is anchored with `\\A` and `\\z`, which RE2 (DuckDB), Java's regexes and Joni (Trino) all read as
the ends of the text (`^` and `$` may match at a line's end in some of them). The regex has no lookaround or
backreference: it runs the same way on every engine loglake sends rules to.
"""

from __future__ import annotations

import ipaddress

_HEX = "[0-9A-Fa-f]"
_GROUP = f"{_HEX}{{1,4}}"
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_ZONE = "(?:%[0-9A-Za-z._~-]+)?"


def network_regex(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """The anchored pattern of the text of the network's addresses (see the module's notes)."""
    if network.version == 4:
        body = _ipv4(int(network.network_address), network.prefixlen)
    else:
        body = _ipv6(int(network.network_address), network.prefixlen) + _ZONE
    return f"\\A{body}\\z"


def _ipv4(address: int, prefix: int) -> str:
    """IPv4 addresses whose first `prefix` bits are `address`'s."""
    octets = []
    for i in range(4):
        value = (address >> (24 - 8 * i)) & 0xFF
        fixed = min(max(prefix - 8 * i, 0), 8)  # the bits of this octet the prefix decides
        span = 1 << (8 - fixed)
        octets.append(_decimal_range(value & ~(span - 1) & 0xFF, (value | (span - 1)) & 0xFF))
    return _joined(octets, "\\.")


def _decimal_range(low: int, high: int) -> str:
    """The decimal numbers low..high (within 0-255), written without leading zeros."""
    if (low, high) == (0, 255):
        return _OCTET
    if low == high:
        return str(low)
    # by all digits but the last: each such head with the class of its last digits
    heads: dict[str, list[int]] = {}
    for number in range(low, high + 1):
        text = str(number)
        heads.setdefault(text[:-1], []).append(int(text[-1]))
    return "(?:" + "|".join(head + _digits(last) for head, last in heads.items()) + ")"


def _digits(digits: list[int]) -> str:
    if len(digits) == 1:
        return str(digits[0])
    if digits == list(range(digits[0], digits[-1] + 1)):
        return f"[{digits[0]}-{digits[-1]}]"
    return "[" + "".join(map(str, digits)) + "]"


def _ipv6(address: int, prefix: int) -> str:
    """IPv6 addresses whose first `prefix` bits are `address`'s, in each way of writing one."""
    groups = []  # per group: (its pattern, whether it may be zero)
    for i in range(8):
        value = (address >> (112 - 16 * i)) & 0xFFFF
        fixed = min(max(prefix - 16 * i, 0), 16)
        groups.append(_hex_group(value, fixed))
    tail = _ipv4(address & 0xFFFFFFFF, max(prefix - 96, 0))  # the last two groups as an IPv4 address
    zero = [may_be_zero for _, may_be_zero in groups]

    def written(start: int, end: int) -> str:
        """Groups start..end-1 written out, joined by `:` (the last two as IPv4 too, when they end the address)."""
        plain = _joined([pattern for pattern, _ in groups[start:end]])
        if end < 8 or end - start < 2:
            return plain
        dotted = _joined([pattern for pattern, _ in groups[start:6]] + [tail])
        return f"(?:{plain}|{dotted})"

    forms = [written(0, 8)]
    for left in range(8):  # `::` after `left` groups, standing for groups left..right-1 (all zero)
        rights = [written(right, 8) for right in range(left + 1, 9) if all(zero[left:right])]
        if rights:
            after = "|".join(rights)
            forms.append(f"{written(0, left)}::(?:{after})")
    return "(?:" + "|".join(forms) + ")"


def _joined(patterns: list[str], separator: str = ":") -> str:
    """The patterns joined by the separator, a run of the same one written once (`P(?::P){3}`)."""
    runs: list[list] = []
    for pattern in patterns:
        if runs and runs[-1][0] == pattern:
            runs[-1][1] += 1
        else:
            runs.append([pattern, 1])
    return separator.join(p if n == 1 else f"{p}(?:{separator}{p}){{{n - 1}}}" for p, n in runs)


def _hex_group(value: int, fixed: int) -> tuple[str, bool]:
    """A group whose first `fixed` bits are `value`'s, as 1-4 hex digits (leading zeros may be left out),
    and whether it may be zero."""
    if fixed == 0:
        return _GROUP, True
    if fixed == 16 and value == 0:
        return "0{1,4}", True
    digits = []  # the four digits' patterns, written out in full
    for i in range(4):
        digit = (value >> (12 - 4 * i)) & 0xF
        bits = min(max(fixed - 4 * i, 0), 4)
        span = 1 << (4 - bits)
        low = digit & ~(span - 1) & 0xF
        digits.append((low, low + span - 1))
    forms = []
    for dropped in range(4):  # leading zeros left out: the first `dropped` digits are 0
        if all(low == 0 for low, _ in digits[:dropped]):
            forms.append("".join(_hex_digit(low, high) for low, high in digits[dropped:]))
    may_be_zero = all(low == 0 for low, _ in digits)
    return (forms[0] if len(forms) == 1 else "(?:" + "|".join(forms) + ")"), may_be_zero


def _hex_digit(low: int, high: int) -> str:
    if (low, high) == (0, 15):
        return _HEX
    chars = {f"{d:x}" for d in range(low, high + 1)} | {f"{d:X}" for d in range(low, high + 1)}
    if len(chars) == 1:
        return chars.pop()
    return "[" + "".join(sorted(chars)) + "]"
