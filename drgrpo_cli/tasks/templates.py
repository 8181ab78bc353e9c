"""Prompt templates for the math task, as the Dr. GRPO paper's code uses them (sail-sg/understand-r1-zero,
``train_zero_math.py``; the texts are copied character for character).

Built-ins ``qwen_math`` (answer in ``\\boxed{}``), ``r1`` (answer in ``<answer>...</answer>``, stops at
``</answer>``) and ``none`` (alias ``no``), or a UTF-8 file holding ``{question}``. Each template names its
answer extractor (:data:`drgrpo_cli.tasks.answers.EXTRACTORS`), so a run cannot grade an ``r1`` response by
``\\boxed``. The question is substituted with ``str.replace``, never ``str.format`` (LaTeX braces). Every
problem is a one-line :class:`TemplateError`. Details: docs/design/tasks.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from drgrpo_cli.tasks.answers import EXTRACTORS

PLACEHOLDER = "{question}"


class TemplateError(ValueError):
    """A template that cannot be used; the message is one line."""


@dataclass(frozen=True)
class Template:
    """A prompt template: ``format`` holds one or more ``{question}`` placeholders."""

    name: str
    format: str
    stop: tuple[str, ...] = ()
    extractor: str = "boxed"  # "boxed" | "answer_tag"

    def apply(self, question: str) -> str:
        """The prompt for ``question``."""
        return self.format.replace(PLACEHOLDER, question)

    def __call__(self, question: str) -> str:
        return self.apply(question)


QWEN_MATH = Template(
    name="qwen_math",
    format=(
        "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
        "<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
    ),
    stop=(),
    extractor="boxed",
)

R1 = Template(
    name="r1",
    format=(
        "A conversation between User and Assistant. The User asks a question, and the Assistant solves it. "
        "The Assistant first thinks about the reasoning process in the mind and then provides the User with "
        "the answer. The reasoning process is enclosed within <think> </think> and answer is enclosed within "
        "<answer> </answer> tags, respectively, i.e., <think> reasoning process here </think> "
        "<answer> answer here </answer>.\nUser: {question}\nAssistant: <think>"
    ),
    stop=("</answer>",),
    extractor="answer_tag",
)

NONE = Template(name="none", format=PLACEHOLDER, stop=(), extractor="boxed")

#: The built-in templates by name.
TEMPLATES: dict[str, Template] = {t.name: t for t in (QWEN_MATH, R1, NONE)}
#: Other accepted names for built-ins (the paper's code calls the bare template ``no``).
ALIASES: dict[str, str] = {"no": "none"}


def template_names() -> tuple[str, ...]:
    """The built-in template names."""
    return tuple(TEMPLATES)


def load_template(spec: str, *, extractor: str | None = None, stop: tuple[str, ...] | None = None) -> Template:
    """A built-in template by name (``qwen_math``, ``r1``, ``none``) or a template read from a text file.

    ``extractor`` and ``stop`` apply to file templates only (built-ins carry the paper's settings); left
    as ``None`` they are inferred: ``answer_tag`` with stop ``</answer>`` when the text mentions
    ``<answer>``, else ``boxed`` with no stop string. One trailing newline of the file is dropped.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise TemplateError(f"template must be a built-in name ({', '.join(TEMPLATES)}) or a file path, got {spec!r}")
    name = ALIASES.get(spec, spec)
    if name in TEMPLATES:
        return TEMPLATES[name]
    path = Path(spec).expanduser()
    if not path.is_file():
        raise TemplateError(f"template {spec!r} is neither a built-in ({', '.join(TEMPLATES)}) nor an existing file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TemplateError(f"template file {spec}: not UTF-8 text") from None
    except OSError as e:
        raise TemplateError(f"template file {spec}: cannot read ({e.strerror or e})") from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if PLACEHOLDER not in text:
        raise TemplateError(f"template file {spec}: no {PLACEHOLDER} placeholder")
    if extractor is None:
        extractor = "answer_tag" if "<answer>" in text else "boxed"
    if extractor not in EXTRACTORS:
        raise TemplateError(f"template extractor must be one of {', '.join(EXTRACTORS)}, got {extractor!r}")
    if stop is None:
        stop = ("</answer>",) if extractor == "answer_tag" else ()
    return Template(name=path.stem, format=text, stop=tuple(stop), extractor=extractor)
