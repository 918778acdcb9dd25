"""Step through reasoning chains in notebooks: pure functions from a `Chain` to HTML and images.

- ``chain_html(chain, problem)``: one chain as an HTML table (thoughts, sketches as base64 data URIs,
  what each sketch reads back as, verifier scores). Self-contained for a notebook cell; the run
  directory's ``report.html`` is different and links the PNG files instead.
- ``step_strip(chain, i, task)``: one step as a PIL strip: thought | sketch | the state read back from
  the sketch with ``task.read``, re-rendered (or "unreadable") | the step's verifier scores.
- ``first_disagreement(chain, problem)``: the first step the consistency verifier rejects.
- ``problem_from_id(id)`` / ``load_run(run_dir, …)``: reopen what ``vot bench`` wrote.
- ``ChainViewer`` (in `vot.viewer_widget`, needs ipywidgets): a slider and a play button over the steps
  of one problem's chains, side by side.
"""
from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

import tasks
from tasks import Problem, Task
from vot.chain import Chain, problem_records

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


def consistency_scores(chain: Chain, problem: Problem) -> list[float]:
    """The consistency verifier's step scores (computed, not read from the chain; nothing is written)."""
    from vot.verifiers import ConsistencyVerifier

    return ConsistencyVerifier().step_scores(problem, chain)


def first_disagreement(chain: Chain, problem: Problem, scores: Sequence[float] | None = None) -> int | None:
    """Index of the first step whose consistency score is below 0.5 (sketch and thought disagree, a
    move breaks the rules visible in the input, or the answer contradicts the last sketch)."""
    scores = consistency_scores(chain, problem) if scores is None else scores
    return next((i for i, score in enumerate(scores) if score < 0.5), None)


def _describe(task: Task, state) -> str:
    describe = getattr(task, "describe", None)
    return describe(state) if describe is not None else repr(state)


# --- HTML ----------------------------------------------------------------------------------------
def data_uri(image: Image.Image) -> str:
    """A PNG data URI (for notebook HTML only; run directories reference files)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(image: Image.Image, alt: str, width: int = 96) -> str:
    return (f'<img src="{data_uri(image)}" alt="{alt}" width="{width}" '
            f'style="image-rendering:pixelated;border:1px solid #ccc">')


def chain_html(chain: Chain, problem: Problem | None = None) -> str:
    """One chain as self-contained HTML: a row per step with its (escaped) thought, its sketch inlined
    as a data URI, what the sketch reads back as, and its scores. With ``problem``: the input image,
    the prompt, whether the answer is correct, and the first disagreeing step highlighted."""
    task = tasks.get(chain.task)
    bad = first_disagreement(chain, problem) if problem is not None else None
    verdict = ""
    if problem is not None and chain.answer is not None:
        verdict = " — correct" if task.check(problem, chain.answer).correct else " — wrong"
    status = "" if chain.finished else " (unfinished)"
    parts = [f'<div class="vot-chain"><p><b>{html.escape(chain.problem_id)}</b> · chain {chain.sample} · answer: '
             f'{html.escape(str(chain.answer))}{verdict}{status}</p>']
    if problem is not None:
        prompt = html.escape(problem.prompt).replace("\n", "<br>")
        parts.append(f'<p>{_img(problem.image, "input image", 128)}</p><p style="font-size:90%">{prompt}</p>'
                     f"<p>gold answer: {html.escape(problem.answer)}</p>")
    parts.append("<table><tr><th>#</th><th>thought</th><th>sketch</th><th>reads as</th><th>scores</th></tr>")
    for i, step in enumerate(chain.steps):
        sketch = _img(step.sketch, f"sketch {i + 1}") if step.sketch is not None else ""
        if step.sketch is None:
            seen = ""
        else:
            state = read_back(task, step.sketch)
            seen = "unreadable" if state is None else html.escape(_describe(task, state))
        scores = ", ".join(f"{k} {v:.2f}" for k, v in step.scores.items())
        style = ' style="background:#fdd" title="first step where sketch and thought disagree"' if i == bad else ""
        parts.append(f"<tr{style}><td>{i + 1}</td><td>{html.escape(step.thought)}</td><td>{sketch}</td>"
                     f"<td>{seen}</td><td>{html.escape(scores)}</td></tr>")
    parts.append("</table>")
    if bad is not None:
        parts.append(f"<p>first disagreement: step {bad + 1}</p>")
    parts.append("</div>")
    return "".join(parts)


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
_ID = re.compile(r"^(?P<task>[^/]+)/(?P<split>[^/]+)/s(?P<size>\d+)/seed(?P<seed>-?\d+)/(?P<index>\d+)$")
_SPLITS: dict[tuple, list[Problem]] = {}


def problem_from_id(problem_id: str) -> Problem:
    """Re-generate a problem from its split id (``maze-mcq-v0/test/s3/seed0/00001``); splits are
    deterministic, so this is the problem the run saw. Streams are cached per (task, split, size, seed)."""
    from tasks.splits import generate_split

    match = _ID.match(problem_id)
    if match is None:
        raise ValueError(f"{problem_id!r} is not a split id like 'maze-mcq-v0/test/s3/seed0/00001'")
    task = tasks.get(match["task"])
    key = (task, match["split"], int(match["size"]), int(match["seed"]))  # the task object: re-registering resets
    index = int(match["index"])
    cached = _SPLITS.get(key, [])
    if len(cached) <= index:  # a longer stream starts with the shorter one, so the cache only grows
        cached = generate_split(task, key[1], key[2], count=index + 1, seed=key[3])
        _SPLITS[key] = cached
    problem = cached[index]
    if problem.id != problem_id:
        raise ValueError(f"re-generated {problem.id!r}, not {problem_id!r}")
    return Problem.from_json(problem.to_json())  # a copy: callers may change theirs


def load_run(run_dir: str | Path, problem_id: str | None = None, group: str | None = None):
    """One problem's chains from a ``vot bench`` run directory: ``(problem, group, records, chains)``.

    ``problem_id`` defaults to the first problem in the log; ``group`` (``strategy@N``, as
    ``vot show`` prints them) defaults to the sampled pool (``pool@N``) if the run has one, else the
    first group. Sketches load from their PNG files; the problem is re-generated from its id."""
    problem_id, mine = problem_records(run_dir, problem_id)
    groups = list(dict.fromkeys(f"{r['strategy']}@{r['n']}" for r in mine))
    if group is None:
        group = next((g for g in groups if g.startswith("pool@")), groups[0])
    if group not in groups:
        raise ValueError(f"group {group!r} is not in {run_dir} for {problem_id}; it has {', '.join(groups)}")
    chosen = [r for r in mine if f"{r['strategy']}@{r['n']}" == group]
    chains = [Chain.from_json(r["chain"], run_dir) for r in chosen]
    return problem_from_id(problem_id), group, chosen, chains


def __getattr__(name: str):
    if name == "ChainViewer":  # lives apart so that `import vot.viewer` needs no ipywidgets
        from vot.viewer_widget import ChainViewer

        return ChainViewer
    raise AttributeError(f"module 'vot.viewer' has no attribute {name!r}")
