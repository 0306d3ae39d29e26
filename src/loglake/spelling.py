"""What a misspelt name was likely meant to be, as Elasticsearch says it for an unknown parameter: the known
names more than half alike (Lucene's Levenshtein similarity), the likest first. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def alike(name: str, candidates: Iterable[str]) -> list[str]:
    """The candidates more than half alike `name`, the likest first (ties by name)."""
    ranked = sorted((-similarity(name, known), known) for known in candidates)
    return [known for score, known in ranked if -score > 0.5]


def similarity(a: str, b: str) -> float:
    """1 less the edit distance over the longer length (Lucene's LevenshteinDistance.getDistance)."""
    if not a or not b:
        return float(a == b)
    return 1 - edit_distance(a, b) / max(len(a), len(b))


def edit_distance(a: str, b: str, transpositions: bool = False) -> int:
    """The Levenshtein distance: the fewest insertions, deletions and substitutions making `a` into `b`; with
    `transpositions`, a swap of two neighbours counts as one edit too (the optimal string alignment distance)."""
    before, previous = [], list(range(len(b) + 1))
    for i, char in enumerate(a, 1):
        current = [i]
        for j, other in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char != other)))
            if transpositions and i > 1 and j > 1 and char == b[j - 2] and a[i - 2] == other:
                current[j] = min(current[j], before[j - 2] + 1)
        before, previous = previous, current
    return previous[-1]


def typo_of(name: str, candidates: Iterable[str]) -> list[str]:
    """The candidates `name` is likely a typo of, the nearest first: within Elasticsearch's AUTO fuzziness of
    the shorter of the two (no edit for 1-2 characters, one for 3-5, two beyond), so that a short name
    (`pid`) is not taken for a typo of a shorter one (`id`). Two letters swapped are one edit, as in
    Elasticsearch's fuzzy matching: the commonest typo (`prot` for `port`) was two, past a short name's one."""
    found = []
    for known in candidates:
        shorter = min(len(name), len(known))
        allowed = 0 if shorter <= 2 else 1 if shorter <= 5 else 2
        distance = edit_distance(name, known, transpositions=True)
        if 0 < distance <= allowed:
            found.append((distance, known))
    return [known for _, known in sorted(found)]


def unknown_parameter(name: str, known: Sequence[str]) -> str:
    """Why a query parameter not among `known` is refused: the one likely meant first, then every known one."""
    close = alike(name, known)
    meant = f"did you mean {' or '.join(close)}? " if close else ""
    return f"unknown parameter; {meant}known: {', '.join(known)}"
