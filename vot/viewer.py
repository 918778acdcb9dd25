"""Step through reasoning chains in notebooks: pure functions from a `Chain` to HTML and images.

- ``chain_html(chain, problem)``: one chain as an HTML table (thoughts, sketches as base64 data URIs,
  what each sketch reads back as, verifier scores). Self-contained for a notebook cell; the run
  directory's ``report.html`` is different and links the PNG files instead.
- ``step_strip(chain, i, task)``: one step as a PIL strip: thought | sketch | the state read back from
  the sketch with ``task.read``, re-rendered (or "unreadable") | the step's verifier scores.
- ``first_disagreement(chain, problem)``: the first step the consistency verifier rejects;
  ``consistency_checks(chain, problem)``: the rule each rejected step breaks.
- ``chain_rows(chain, problem)``: the per-step rows `chain_html` and the run report render.
- ``load_run(run_dir, …)``: one problem's chains of what ``vot bench`` wrote (`vot.run.read_run`);
  ``problem_from_id(id)`` (from `vot.run`) re-generates a split problem.
- ``ChainViewer`` (in `vot.viewer_widget`, needs ipywidgets): a slider and a play button over the steps
  of one problem's chains, side by side.
"""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

import tasks
from tasks import Problem, Task
from vot.chain import Chain
from vot.run import problem_from_id, read_run  # noqa: F401  (problem_from_id: part of this module's API)

PANEL = 128  # px side of each image panel in a strip
TEXT_WIDTH = 220
SCORE_WIDTH = 150
CAPTION = 16
LINE = 15  # px per text line
RED, GREY, BLACK, WHITE = (200, 0, 0), (150, 150, 150), (0, 0, 0), (255, 255, 255)


# --- reading a chain ---------------------------------------------------------------------------
def read_back(task: Task, sketch: Image.Image | None):
    """The state ``task.read`` sees in ``sketch``; ``None`` when there is no sketch or it is unreadable."""
    if sketch is None:
        return None
    try:
        return task.read(sketch)
    except ValueError:
        return None


def consistency_checks(chain: Chain, problem: Problem, verifier=None) -> list[str | None]:
    """Per step, the rule the consistency verifier says it breaks (``None``: the step is right);
    computed, not read from the chain, and nothing is written (`ConsistencyVerifier.step_checks`)."""
    from vot.verifiers import ConsistencyVerifier

    return (verifier or ConsistencyVerifier()).step_checks(problem, chain)


def consistency_scores(chain: Chain, problem: Problem) -> list[float]:
    """The consistency verifier's step scores (computed, not read from the chain; nothing is written)."""
    return [1.0 if reason is None else 0.0 for reason in consistency_checks(chain, problem)]


def first_disagreement(chain: Chain, problem: Problem, scores: Sequence[float] | None = None) -> int | None:
    """Index of the first step whose consistency score is below 0.5 (sketch and thought disagree, a
    move breaks the rules visible in the input, or the answer contradicts the last sketch)."""
    scores = consistency_scores(chain, problem) if scores is None else scores
    return next((i for i, score in enumerate(scores) if score < 0.5), None)


def _describe(task: Task, state) -> str:
    try:
        return task.describe(state)
    except NotImplementedError:
        return repr(state)


@dataclass
class StepRow:
    """One step as people read it (`chain_rows`): its number in the chain, the stated action it
    stands for (MCQ: ``(number, sentence)``, sentence ``None`` past the stated ones), what its sketch
    reads back as ("" without a sketch), its scores, and the rule it breaks (``None``: accepted)."""

    number: int
    action: tuple[int, str | None] | None
    thought: str
    sketch: Image.Image | None
    sketch_path: str | None
    reads_as: str
    scores: dict[str, float]
    rejected: str | None
    first: bool
    is_answer: bool


def chain_rows(chain: Chain, problem: Problem | None = None, verifier=None) -> list[StepRow]:
    """The rows `chain_html` and the run report show. Scores are the chain's own plus, with
    ``problem``, the consistency score computed here (and the confidence from the log-probs) where
    the run did not score the step; ``rejected`` names the consistency rule a step breaks.
    ``verifier``: a `ConsistencyVerifier` to reuse (it caches what each sketch image reads as)."""
    from tasks.parsing import action_sentence
    from vot.verifiers import ConfidenceVerifier, ConsistencyVerifier

    task = tasks.get(chain.task)
    verifier = verifier or ConsistencyVerifier()  # one reader: each sketch is read back once
    checks = consistency_checks(chain, problem, verifier) if problem is not None else [None] * len(chain.steps)
    confidence = ConfidenceVerifier().step_scores(problem, chain) if problem is not None else []
    first = next((i for i, reason in enumerate(checks) if reason is not None), None)
    rows, position = [], 0
    for i, step in enumerate(chain.steps):
        action = None
        if problem is not None and problem.actions and not step.is_answer:
            position += 1
            stated = problem.actions[position - 1] if position <= len(problem.actions) else None
            action = (position, action_sentence(stated) if stated is not None else None)
        scores = dict(step.scores)
        if problem is not None:
            scores.setdefault("consistency", 0.0 if checks[i] is not None else 1.0)
            if step.logprobs:
                scores.setdefault("confidence", confidence[i])
        if step.sketch is None:
            seen = ""
        else:
            state = verifier.read(task, step.sketch)
            seen = "unreadable" if state is None else _describe(task, state)
        rows.append(StepRow(i + 1, action, step.thought, step.sketch, step.sketch_path, seen, scores, checks[i],
                            i == first, step.is_answer))
    return rows


# --- HTML ----------------------------------------------------------------------------------------
def data_uri(image: Image.Image) -> str:
    """A PNG data URI (for notebook HTML only; run directories reference files)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def chain_html(chain: Chain, problem: Problem | None = None) -> str:
    """One chain as self-contained HTML: a row per step with its (escaped) thought, its sketch inlined
    as a data URI, what the sketch reads back as, and its scores. With ``problem``: the input image,
    the prompt, the stated action beside each step, whether the answer is correct, and the first
    disagreeing step highlighted with the rule it breaks (template ``chain.html.j2``)."""
    from vot.templating import render

    task = tasks.get(chain.task)
    verdict = None
    if problem is not None and chain.answer is not None:
        verdict = "correct" if task.check(problem, chain.answer).correct else "wrong"
    rows = chain_rows(chain, problem)
    return render("chain.html.j2", chain=chain, problem=problem, verdict=verdict, rows=rows,
                  srcs=[data_uri(r.sketch) if r.sketch is not None else None for r in rows],
                  input_src=data_uri(problem.image) if problem is not None else None)


# --- strips --------------------------------------------------------------------------------------
def _font() -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=12)
    except TypeError:  # pillow < 10.1: the bitmap font
        return ImageFont.load_default()


def _wrap(draw: ImageDraw.ImageDraw, text: str, width: int, font) -> list[str]:
    lines = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if line and draw.textlength(candidate, font=font) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


def _panel_image(image: Image.Image | None, message: str) -> Image.Image:
    """``image`` scaled (nearest) to fit a PANEL square, or a grey square saying ``message``."""
    panel = Image.new("RGB", (PANEL, PANEL), (235, 235, 235))
    if image is None:
        ImageDraw.Draw(panel).text((8, PANEL // 2 - 6), message, fill=GREY, font=_font())
        return panel
    scale = PANEL / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    resized = image.convert("RGB").resize(size, Image.NEAREST)
    panel.paste(resized, ((PANEL - size[0]) // 2, (PANEL - size[1]) // 2))
    return panel


def _strip(title: str, text: str, image: Image.Image | None, image_note: str, seen: Image.Image | None,
           seen_note: str, score_lines: Sequence[str], highlight: bool, caption: str = "sketch") -> Image.Image:
    width = TEXT_WIDTH + 2 * PANEL + SCORE_WIDTH + 5 * 4
    strip = Image.new("RGB", (width, PANEL + CAPTION + 8), WHITE)
    draw, font = ImageDraw.Draw(strip), _font()
    lines = [title, *_wrap(draw, text, TEXT_WIDTH - 8, font)]
    for row, line in enumerate(lines[: (PANEL + CAPTION) // LINE]):
        draw.text((6, 6 + LINE * row), line, fill=RED if highlight and row == 0 else BLACK, font=font)
    x = TEXT_WIDTH + 4
    for picture, note, caption in ((image, image_note, caption), (seen, seen_note, "read back")):
        strip.paste(_panel_image(picture, note), (x, 4))
        draw.rectangle([x - 1, 3, x + PANEL, 4 + PANEL], outline=(190, 190, 190))
        draw.text((x, PANEL + 6), caption, fill=GREY, font=font)
        x += PANEL + 4
    for row, line in enumerate(score_lines):
        draw.text((x + 4, 6 + LINE * row), line, fill=RED if highlight and "disagree" in line else BLACK, font=font)
    if highlight:
        draw.rectangle([0, 0, width - 1, strip.height - 1], outline=RED, width=3)
    return strip


def step_strip(chain: Chain, step_index: int, task: Task | str, *, highlight: bool = False,
               scores: dict[str, float] | None = None) -> Image.Image:
    """One step as an RGB strip: the thought, the sketch, the state read back from the sketch with
    ``task.read`` and re-rendered (or "unreadable"), and the step's verifier scores (``scores`` adds
    to or overrides them, e.g. ones computed for display only). ``highlight`` frames it in red (the
    viewer marks the first step where sketch and thought disagree so)."""
    task = tasks.get(task)
    if not -len(chain.steps) <= step_index < len(chain.steps):
        raise IndexError(f"step {step_index} is out of range: the chain has {len(chain.steps)} steps")
    index = step_index % len(chain.steps)
    step = chain.steps[index]
    state = read_back(task, step.sketch)
    seen = task.render(state) if state is not None else None
    seen_note = "unreadable" if step.sketch is not None else "no sketch"
    lines = [f"{k}: {v:.2f}" for k, v in {**step.scores, **(scores or {})}.items()] or ["(no scores)"]
    if step.is_answer:
        lines.append(f"answer: {chain.answer}")
    if highlight:
        lines.append("disagrees here")
    title = f"chain {chain.sample} · step {index + 1}/{len(chain.steps)}"
    return _strip(title, step.thought, step.sketch, "no sketch", seen, seen_note, lines, highlight)


def input_strip(problem: Problem) -> Image.Image:
    """The problem before any step, laid out like `step_strip` (for step 0 of the viewer)."""
    task = tasks.get(problem.task)
    image = problem.image
    state = read_back(task, image)
    return _strip("input", problem.prompt, image, "", task.render(state) if state is not None else None,
                  "unreadable", [f"gold answer: {problem.answer}"], False, caption="input image")


# --- reopening a run directory -------------------------------------------------------------------
def load_run(run_dir: str | Path, problem_id: str | None = None, group: str | None = None):
    """One problem's chains from a ``vot bench`` run directory: ``(problem, group, records, chains)``,
    ``records`` the `vot.run.ChainRecord`s and ``chains`` their chains with sketches loaded.

    ``problem_id`` defaults to the first problem in the log; ``group`` (``strategy@N``, as
    ``vot show`` prints them) defaults to the sampled pool (``pool@N``) if the run has one, else the
    first group. The problem comes from the run's ``problems.jsonl`` (`vot.run.read_run`)."""
    run = read_run(run_dir)
    entry = run.problem(problem_id)
    groups = entry.groups()
    if group is None:
        group = next((g for g in groups if g.startswith("pool@")), next(iter(groups)))
    if group not in groups:
        raise ValueError(f"group {group!r} is not in {run_dir} for {entry.id}; it has {', '.join(groups)}")
    chosen = groups[group]
    cache: dict = {}
    return entry.problem, group, chosen, [run.sketched(r, cache) for r in chosen]


def __getattr__(name: str):
    if name == "ChainViewer":  # lives apart so that `import vot.viewer` needs no ipywidgets
        from vot.viewer_widget import ChainViewer

        return ChainViewer
    raise AttributeError(f"module 'vot.viewer' has no attribute {name!r}")
