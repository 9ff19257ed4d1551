"""Names that look like what they are: model and feature names must not hide characters.

Two names that look the same on a screen must be the same name, or a model is monitored twice and its alerts
name a feature nobody can type. So a model or feature name is refused when it holds an invisible formatting
character (a zero-width space or joiner, a byte-order mark, a soft hyphen, a right-to-left override: Unicode's
category Cf), or when it is not in Unicode's composed form, NFC ('café' written as 'e' plus a combining accent
looks exactly like 'café' with 'é', and compares unequal). Letters of any script are fine.
"""

from __future__ import annotations

import unicodedata


def hidden_characters(name: str) -> str | None:
    """Why ``name`` may look like another name, fit for an error message, or None when it cannot.

    >>> hidden_characters("café") is None
    True
    >>> hidden_characters("pay\\u200bment")
    "holds the invisible character U+200B ZERO WIDTH SPACE, so it looks like 'payment'; remove it"
    """
    invisible = [char for char in name if unicodedata.category(char) == "Cf"]
    if invisible:
        first = invisible[0]
        return (
            f"holds the invisible character {_code_point(first)}"
            + (f" and {len(invisible) - 1} more" if len(invisible) > 1 else "")
            + f", so it looks like {''.join(c for c in name if unicodedata.category(c) != 'Cf')!r}; remove it"
        )
    if not unicodedata.is_normalized("NFC", name):
        composed = unicodedata.normalize("NFC", name)
        combining = next((char for char in name if unicodedata.combining(char)), None)
        what = f"a combining character ({_code_point(combining)})" if combining else "a decomposed character"
        return f"is not in Unicode's composed form (NFC): it has {what}; write it as {composed!r}"
    return None


def visible(name: str) -> str:
    """``name`` as is when :func:`hidden_characters` finds nothing, else with every character outside ASCII
    written as an escape (``'cafe\\\\u0301'``), so that a label or a message shows how it differs."""
    if hidden_characters(name) is None:
        return name
    return name.encode("ascii", "backslashreplace").decode("ascii")


def _code_point(char: str) -> str:
    return f"U+{ord(char):04X} {unicodedata.name(char, 'UNNAMED')}"
