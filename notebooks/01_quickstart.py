# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Quickstart: solve one maze and step through its chains
#
# The loop alternates a verbal thought ("Go left."), a sketch of the state after it, and re-reading
# the sketch. Here it runs with the **reference components**: `SimulatedPolicy` (follows the gold
# trace with controlled random mistakes) and `OracleSketcher` (draws the true next state), so it runs
# in seconds on a CPU. The viewer works the same on chains from the learned models.

# %%
import tasks
from IPython.display import HTML
from tasks.splits import generate_split
from vot.components import build_reasoner
from vot.viewer import ChainViewer, chain_html, step_strip

# %% [markdown]
# One test problem: a 4×4 maze, a yellow start, four candidate cells A–D and an action sequence.

# %%
task = tasks.get("maze-mcq-v0")
problem = generate_split(task, "test", size=4, count=1, seed=0)[0]
print(problem.id)
print(problem.prompt)
problem.image.resize((128, 128), resample=0)

# %% [markdown]
# Build the loop by name and sample four chains. `on_step` lets you watch them grow: every
# `Reasoner.advance` moves all chains one step together (one batched think, sketch and encode).

# %%
reasoner = build_reasoner("maze-mcq-v0", policy="simulated", sketcher="oracle", error_rate=0.3, seed=0)
reasoner.on_step(lambda chain, step: print(f"chain {chain.sample} step {len(chain.steps)}: {step.thought}"))
chains = reasoner.run([problem], n=4)[0]
for chain in chains:
    print(chain.sample, chain.answer, "correct" if task.check(problem, chain.answer).correct else "wrong")

# %% [markdown]
# ## One chain as HTML
#
# `chain_html` shows every thought with its sketch (inlined as a data URI, so the notebook is
# self-contained), what `task.read` sees in the sketch, and the step's verifier scores. With the
# problem it also marks the first step where sketch and thought disagree.

# %%
chain = chains[0]
HTML(chain_html(chain, problem))

# %% [markdown]
# ## One step as an image
#
# `step_strip(chain, i, task)`: the thought, the sketch, the state read back from the sketch and
# re-rendered (or "unreadable"), and the scores.

# %%
step_strip(chain, 2, task)

# %% [markdown]
# ## The stepper
#
# `ChainViewer` puts the chains of one problem side by side under a slider and a play button;
# position 0 is the input. The first step where a chain's sketch and thought disagree (consistency
# score below 0.5) is framed in red and named in the chain's header.

# %%
viewer = ChainViewer(chains, problem)
print("first disagreement per chain (0-based step):", viewer.disagreements)
viewer

# %% [markdown]
# Outside a live notebook (or to save a picture), `viewer.image(position)` stacks the cards.

# %%
bad = next((i for i, step in enumerate(viewer.disagreements) if step is not None), None)
viewer.show(viewer.disagreements[bad] + 1 if bad is not None else 1).image()

# %% [markdown]
# ## Opening a `vot bench` run
#
# A run directory written by the CLI (`vot bench maze --size 3 --count 2 --n 1,2 --out RUN`) opens
# the same way: chains come from `results.jsonl`, sketches from their PNG files, and the problems
# from `problems.jsonl`.

# %%
import tempfile
from pathlib import Path

from vot.bench import BenchConfig, run_bench

run_dir = Path(tempfile.mkdtemp()) / "run"
summary = run_bench(BenchConfig(task="maze-mcq-v0", policy="simulated", sketcher="oracle", sizes=[3], count=2,
                                n=[1, 2], out=str(run_dir)), progress=False)
ChainViewer.from_run_dir(run_dir)  # the pool of N_max chains of the first problem; group="greedy@1" etc.

# %% [markdown]
# `read_run` reads the whole directory as one typed record: the config, the summary, and every
# problem with its chain records (strategy, N, verifier, selected, correct, the strategy's result,
# the pool's chain scores and the `Chain` itself). `vot.explain.selections` says which chain each
# strategy selected for a problem and why, as the run's `report.html` does.

# %%
from vot.explain import selections
from vot.run import read_run

run = read_run(run_dir)
entry = run.problems[0]
print(entry.id, "| size", entry.size, "| groups", ", ".join(entry.groups()))
for selection in selections(run, entry):
    chain = selection.record.chain.sample if selection.record else "-"
    print(f"{selection.group:<20} chain {chain}: {'right' if selection.correct else 'wrong'} ({selection.reason})")
