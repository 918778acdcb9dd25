"""Lenient answer parsing. ``None`` always means "could not parse", never "wrong"."""
from __future__ import annotations

import re
from typing import Sequence

_ANSWER_MARKER = re.compile(r"answer\s*(?:is|:)?\s*:?", re.IGNORECASE)


def _after_last_marker(text: str) -> str:
    matches = list(_ANSWER_MARKER.finditer(text))
    return text[matches[-1].end():] if matches else text


def parse_option(text: str, options: dict[str, str]) -> str | None:
    """Option letter named by ``text``: "The answer is B.", "(b)", "B", or the option's own words
    ("Success"). Looks after the last "answer is" when present. ``None`` if absent or ambiguous."""
    if not isinstance(text, str) or not text.strip():
        return None
    tail = _after_last_marker(text)
    letters = "".join(options)
    letter = re.match(rf"\s*[\(\[\"']?\s*([{letters}])(?![A-Za-z])", tail) or re.match(
        rf"\s*[\(\[]([{letters.lower()}])[\)\]]", tail
    )
    if letter:
        return letter.group(1).upper()
    found = {key for key, words in options.items() if re.search(rf"\b{re.escape(words)}\b", tail, re.IGNORECASE)}
    if len(found) == 1:
        return found.pop()
    standalone = set(re.findall(rf"(?<![A-Za-z])([{letters}])(?![A-Za-z])", tail))
    if len(standalone) == 1:
        return standalone.pop()
    return None


def parse_actions(text: str, vocabulary: Sequence[str]) -> list[str] | None:
    """Action sequence named in ``text`` ("Go up. Go left. Pick up. Drop." or "up, left").
    Looks after the last "answer is" when present. ``None`` if no action is found."""
    if not isinstance(text, str) or not text.strip():
        return None
    tail = _after_last_marker(text).lower()
    by_length = sorted(vocabulary, key=len, reverse=True)  # "pick up" before "up"
    pattern = re.compile(r"\b(" + "|".join(re.escape(a) for a in by_length) + r")\b")
    found = pattern.findall(tail)
    return found or None


def action_sentence(action: str) -> str:
    """Canonical sentence for an action: "Go up.", "Pick up.", "Drop."."""
    if action in ("up", "down", "left", "right"):
        return f"Go {action}."
    return action[0].upper() + action[1:] + "."


def plan_text(actions: Sequence[str]) -> str:
    return " ".join(action_sentence(a) for a in actions)
