"""Finding the final answer in a response or a gold answer: pure string code, no math-verify needed.

``boxed`` (templates ``qwen_math``, ``none``) takes the *last* ``\\boxed{...}`` / ``\\fbox{...}`` /
``\\boxed 5``, braces balanced; a last box that never closes is no answer (never an earlier box).
``answer_tag`` (template ``r1``) takes the text after the last ``<answer>`` up to ``</answer>`` (a missing
``</answer>`` is tolerated), or the box inside it. :data:`EXTRACTORS` names them; templates, the reward
and the dataset loader all use this one module.
"""

from __future__ import annotations

from typing import Callable

BOX_COMMANDS = ("\\boxed", "\\fbox")


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` / ``\\fbox{...}`` in ``text`` (braces balanced), or None.

    ``\\boxed 5`` (no braces) gives ``5``. If the last box is never closed, the result is None.
    """
    if not text:
        return None
    idx = max(text.rfind(cmd) for cmd in BOX_COMMANDS)
    if idx < 0:
        return None
    cmd = next(c for c in BOX_COMMANDS if text.startswith(c, idx))
    i = idx + len(cmd)
    if i < len(text) and text[i] == " " and (i + 1 < len(text) and text[i + 1] != "{"):
        # "\boxed 5$" form (Hendrycks' MATH has a few): up to the next "$" or the end of the text.
        rest = text[i + 1:]
        end = rest.find("$")
        return (rest if end < 0 else rest[:end]).strip()
    while i < len(text) and text[i] in " \t":
        i += 1
    if i >= len(text) or text[i] != "{":
        return None
    depth = 0
    for j in range(i, len(text)):
        ch = text[j]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j]
    return None


def answer_tag(text: str) -> str | None:
    """The content of the last ``<answer>...</answer>`` (the box's content if it holds a ``\\boxed{}``)."""
    if not text:
        return None
    start = text.rfind("<answer>")
    if start < 0:
        return None
    content = text[start + len("<answer>"):]
    end = content.find("</answer>")
    if end >= 0:
        content = content[:end]
    if any(cmd in content for cmd in BOX_COMMANDS):
        return last_boxed(content)
    return content.strip()


#: The answer extractors by name: templates name one (``Template.extractor``), the reward applies it.
EXTRACTORS: dict[str, Callable[[str], str | None]] = {"boxed": last_boxed, "answer_tag": answer_tag}


def extract_answer(text: str, extractor: str) -> str | None:
    """The final answer in a response by ``extractor`` (``boxed`` or ``answer_tag``); None when absent."""
    if extractor not in EXTRACTORS:
        raise ValueError(f"extractor must be one of {', '.join(EXTRACTORS)}, got {extractor!r}")
    ans = EXTRACTORS[extractor](text)
    if ans is None or not ans.strip():
        return None
    return ans.strip()


def gold_answer(gold: str) -> str:
    """The gold answer to grade against: a gold holding ``\\boxed{}`` is reduced to the last box's content."""
    gold = str(gold).strip()
    if any(cmd in gold for cmd in BOX_COMMANDS):
        boxed = last_boxed(gold)
        if boxed is not None and boxed.strip():
            return boxed.strip()
    return gold
