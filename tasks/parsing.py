"""Lenient answer parsing. ``None`` always means "could not parse", never "wrong"."""
from __future__ import annotations

import re
from typing import Sequence

_ANSWER_MARKER = re.compile(r"answer\s*(?:is|:)?\s*:?", re.IGNORECASE)


def _after_last_marker(text: str) -> str:
    matches = list(_ANSWER_MARKER.finditer(text))
    return text[matches[-1].end():] if matches else text


def parse_option(text: str, options: dict[str, str]) -> str | None:
    """Option letter named by ``text``: "The answer is B.", "(C)", "[a]", "B", or the option's own
    words ("Success"). Reads what follows the last "answer is" when present; ``None`` if absent or
    ambiguous ("A or B")."""
    if not isinstance(text, str) or not text.strip():
        return None
    tail = _after_last_marker(text)
    letters = "".join(options)
    standalone = rf"(?<![A-Za-z])([{letters}])(?![A-Za-z])"
    first_sentence = re.split(r"[.\n!?;]", tail.strip(), maxsplit=1)[0]
    alone = re.fullmatch(r"\W*([A-Za-z])\W*", first_sentence)  # "the answer is a." names option A
    if alone and alone.group(1).upper() in options:
        return alone.group(1).upper()
    named = set(re.findall(standalone, first_sentence))
    if len(named) > 1:
        return None
    if named:
        return named.pop()
    bracketed = re.search(rf"[\(\[]([{letters.lower()}])[\)\]]", first_sentence)
    if bracketed:
        return bracketed.group(1).upper()
    found = {key for key, words in options.items() if re.search(rf"\b{re.escape(words)}\b", tail, re.IGNORECASE)}
    if len(found) == 1:
        return found.pop()
    anywhere = set(re.findall(standalone, tail))
    return anywhere.pop() if len(anywhere) == 1 else None


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
