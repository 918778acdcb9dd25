"""``ChainViewer``: an ipywidgets stepper over one problem's chains (ipywidgets imported when built)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

from PIL import Image

import tasks
from tasks import Problem
from vot.chain import Chain
from vot.run import ChainRecord, problem_from_id
from vot.templating import template
from vot.viewer import consistency_scores, first_disagreement, input_strip, load_run, step_strip


class ChainViewer:
    """A slider and a play button over the steps of the N chains of one problem, side by side.

    Position 0 shows the input; position ``i`` shows step ``i`` of every chain (a chain that has
    already finished keeps showing its last step). The first step where a chain's sketch and thought
    disagree (consistency score < 0.5, `vot.viewer.first_disagreement`) is framed in red and named in
    the chain's header. Display the viewer as the last expression of a cell.

    Args:
        chains: one `Chain` or the chains of one problem.
        problem: the problem; re-generated from the chains' id when omitted (and left out, with no
            disagreement marks, when the id is not a split id).
        records: the chains' `vot.run.ChainRecord`s (``vot bench``), for their selected flags.
        interval_ms: time per step while playing.
    """

    def __init__(self, chains: Chain | Sequence[Chain], problem: Problem | None = None, *,
                 records: Sequence[ChainRecord] | None = None, title: str | None = None, interval_ms: int = 800):
        import ipywidgets as widgets

        self.chains = [chains] if isinstance(chains, Chain) else list(chains)
        if not self.chains:
            raise ValueError("ChainViewer needs at least one chain")
        if len({c.problem_id for c in self.chains}) > 1:
            raise ValueError("ChainViewer shows the chains of one problem; got several problem ids")
        if problem is None:
            try:
                problem = problem_from_id(self.chains[0].problem_id)
            except ValueError:
                problem = None
        self.problem, self.records = problem, list(records) if records is not None else None
        self.task = tasks.get(self.chains[0].task)
        # consistency step scores, shown on every step (the loop itself scores nothing) and used to
        # find the first step where each chain's sketch and thought disagree
        self.consistency = [consistency_scores(c, problem) if problem is not None else None for c in self.chains]
        self.disagreements = [first_disagreement(c, problem, s) if s is not None else None
                              for c, s in zip(self.chains, self.consistency)]
        self.steps = max(len(c.steps) for c in self.chains)
        self.slider = widgets.IntSlider(value=0, min=0, max=self.steps, description="step", continuous_update=True)
        self.play = widgets.Play(value=0, min=0, max=self.steps, step=1, interval=interval_ms, description="play")
        widgets.link((self.play, "value"), (self.slider, "value"))  # kernel-side link: works headless too
        self._cache: dict[tuple[int, int], bytes] = {}
        self.headers = [widgets.HTML(self._header(i)) for i in range(len(self.chains))]
        self.images = [widgets.Image(format="png") for _ in self.chains]
        self.cards = [widgets.VBox([h, im], layout=widgets.Layout(margin="4px", border="1px solid #ddd"))
                      for h, im in zip(self.headers, self.images)]
        name = title or (self.problem.id if self.problem is not None else self.chains[0].problem_id)
        top = widgets.HTML(str(template("widget.html.j2").module.title(name, self.problem.answer if self.problem else None)))
        self.widget = widgets.VBox([top, widgets.HBox([self.play, self.slider]),
                                    widgets.HBox(self.cards, layout=widgets.Layout(flex_flow="row wrap"))])
        self.slider.observe(lambda change: self._draw(change["new"]), names="value")
        self._draw(0)

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, problem_id: str | None = None, group: str | None = None,
                     **kwargs) -> "ChainViewer":
        """The chains of one problem of a ``vot bench`` run (``group`` like ``pool@16`` or ``beam@4``;
        defaults as in `vot.viewer.load_run`)."""
        problem, group, records, chains = load_run(run_dir, problem_id, group)
        kwargs.setdefault("title", f"{problem.id} · {group}")
        return cls(chains, problem, records=records, **kwargs)

    # --- drawing --------------------------------------------------------------------------------
    def strip(self, chain_index: int, position: int) -> Image.Image:
        """What card ``chain_index`` shows at slider ``position`` (0 = the input)."""
        chain = self.chains[chain_index]
        if position == 0:
            if self.problem is None:
                return step_strip(chain, 0, self.task)
            return input_strip(self.problem)
        index = min(position, len(chain.steps)) - 1
        scores = self.consistency[chain_index]
        return step_strip(chain, index, self.task, highlight=index == self.disagreements[chain_index],
                          scores={"consistency": scores[index]} if scores is not None else None)

    def image(self, position: int | None = None) -> Image.Image:
        """Every card at ``position`` (default: the slider's) stacked into one image, for static output."""
        position = self.slider.value if position is None else position
        strips = [self.strip(i, position) for i in range(len(self.chains))]
        out = Image.new("RGB", (max(s.width for s in strips), sum(s.height for s in strips)), (255, 255, 255))
        y = 0
        for s in strips:
            out.paste(s, (0, y))
            y += s.height
        return out

    def show(self, position: int) -> "ChainViewer":
        """Move the slider (and every card) to ``position``."""
        if not 0 <= position <= self.steps:
            raise ValueError(f"position must be in [0, {self.steps}], got {position}")
        self.slider.value = position
        return self

    def _draw(self, position: int) -> None:
        for i, image in enumerate(self.images):
            key = (i, position if position == 0 else min(position, len(self.chains[i].steps)))
            if key not in self._cache:
                buffer = io.BytesIO()
                self.strip(i, position).save(buffer, format="PNG")
                self._cache[key] = buffer.getvalue()
            image.value = self._cache[key]

    def _header(self, i: int) -> str:
        chain = self.chains[i]
        verdict = None
        if self.problem is not None and chain.answer is not None:
            verdict = "correct" if self.task.check(self.problem, chain.answer).correct else "wrong"
        selected = self.records is not None and self.records[i].selected
        return str(template("widget.html.j2").module.header(chain.sample, selected, chain.answer, verdict,
                                                            chain.finished, self.disagreements[i]))

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
