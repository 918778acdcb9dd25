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
# # Test-time scaling: best-of-N on 50 mazes
#
# Sample N chains per problem **once**, then read the whole best-of-k curve off that pool by
# subsampling every k = 1, 2, 4, …, N (`vot.scaling`). The selector is the **consistency verifier**:
# it reads each chain's own sketches back with `Task.read` and checks them against the thoughts and
# the rules visible in the input — it never sees the gold answer. The **oracle** (pass@k: is any
# chain right?) is the ceiling a selector could reach. Components are the reference ones
# (`SimulatedPolicy`, `OracleSketcher`), so this runs on a CPU in seconds.

# %%
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import HTML, display

import tasks
from imagegen import OracleSketcher
from tasks.parsing import action_sentence, parse_actions
from tasks.splits import generate_split
from vot.policy import SimulatedPolicy
from vot.reasoner import Reasoner
from vot.scaling import curves, powers_of_two, score_pool, summarize_curves
from vot.verifiers import ConfidenceVerifier, ConsistencyVerifier
from vot.viewer import ChainViewer, chain_html

TASK = tasks.get("maze-mcq-v0")
N = 8
problems = [p for size in (3, 4, 5, 6) for p in generate_split(TASK, "test", size, count=13, seed=0)][:50]
print(len(problems), "problems, sizes", sorted({p.meta["size"] for p in problems}))


# %%
def scaling_run(sketcher, error_rate=0.3, seed=0):
    """N chains per problem; every chain scored by the verifiers; curves with bootstrap 95% intervals."""
    reasoner = Reasoner(SimulatedPolicy(error_rate, seed=seed), sketcher)
    pools = reasoner.run(problems, N)
    scored = [score_pool(p, chains, [ConsistencyVerifier(), ConfidenceVerifier()]) for p, chains in zip(problems, pools)]
    rng = np.random.default_rng(0)
    return pools, scored, summarize_curves(curves(scored, powers_of_two(N), rng), rng)


def plot(summary, title, axis):
    for name in ("best_of_k/consistency", "best_of_k/confidence", "maj@k", "pass@k/oracle"):
        ks = [int(k) for k in summary[name]]
        values = np.array([[v["value"], v["low"], v["high"]] for v in summary[name].values()])
        style = dict(linestyle="--", color="black") if "oracle" in name else {}
        axis.errorbar(ks, values[:, 0], yerr=[values[:, 0] - values[:, 1], values[:, 2] - values[:, 0]],
                      marker="o", capsize=3, label=name, **style)
    axis.set_xscale("log", base=2)
    axis.set_xlabel("k (chains per problem)")
    axis.set_ylabel("accuracy")
    axis.set_title(title, fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)


# %% [markdown]
# ## Perfect imagination
#
# With the oracle sketcher every sketch is right, so a chain's sketches disagree with its thoughts
# exactly when the policy said a wrong move: the consistency verifier is as good as the oracle.

# %%
pools, scored, summary = scaling_run(OracleSketcher(TASK))
figure, axis = plt.subplots(figsize=(6, 4))
plot(summary, "oracle sketcher", axis)
for name in ("best_of_k/consistency", "pass@k/oracle"):
    print(name, {k: round(v["value"], 3) for k, v in summary[name].items()})


# %% [markdown]
# Where do the selector and the oracle disagree? Per problem (at k = N): the selector picked a wrong
# chain although a right one was in the pool. Per chain: the verifier accepts a wrong chain
# (score ≥ 0.5) or rejects a right one.

# %%
def selected(pool):
    """best-of-N's pick: the highest consistency score among parseable answers, first on ties."""
    valid = [i for i, key in enumerate(pool.keys) if key is not None] or list(range(len(pool.keys)))
    return max(valid, key=lambda i: (pool.scores["consistency"][i], -i))


def disagreements(scored):
    problems_missed = [j for j, pool in enumerate(scored) if pool.correct.any() and not pool.correct[selected(pool)]]
    chains_wrongly_judged = sum(int(((pool.scores["consistency"] >= 0.5) != pool.correct).sum()) for pool in scored)
    return problems_missed, chains_wrongly_judged


missed, judged = disagreements(scored)
print(f"oracle sketcher: {len(missed)} problems where the selector missed a right chain; "
      f"{judged} of {N * len(problems)} chains judged differently from the oracle")


# %% [markdown]
# ## Imperfect imagination
#
# A diffusion sketcher sometimes draws a different move than the thought names. Any object with
# `sketch(prev_images, thoughts, *, steps, generator)` is a sketcher, so imitate one: the oracle,
# except that each sketch draws a random other move with probability `slip`. Its randomness comes
# only from `generator`: the `Reasoner` passes one `torch.Generator` per image, keyed by the chain
# and the step (`vot.keys`), so a chain's sketches do not depend on batching or on what ran before.
# (`imagegen.SlipSketcher` is this sketcher, kept as a reference component.) Now a right chain can
# carry a wrong sketch, the verifier rejects it, and the selector can pick a wrong chain.

# %%
import torch


class SlippySketcher:
    label = "slippy-oracle"
    produces_images = True
    default_steps = 0

    def __init__(self, task, slip=0.15):
        self.oracle, self.task, self.slip = OracleSketcher(task), tasks.get(task), slip

    def sketch(self, prev_images, thoughts, *, steps=None, generator=None):
        drawn = []
        for thought, g in zip(thoughts, generator):
            named = parse_actions(thought, self.task.actions) or []
            u, choice = torch.rand(2, generator=g).tolist()
            if named and u < self.slip:
                others = [a for a in self.task.actions if a not in named]
                thought = action_sentence(others[int(choice * len(others))])
            drawn.append(thought)
        return self.oracle.sketch(prev_images, drawn)


slippy_pools, slippy_scored, slippy_summary = scaling_run(SlippySketcher(TASK))
figure, axis = plt.subplots(figsize=(6, 4))
plot(slippy_summary, "sketcher that slips 15% of the time", axis)
missed, judged = disagreements(slippy_scored)
print(f"slippy sketcher: {len(missed)} problems where the selector missed a right chain; "
      f"{judged} of {N * len(problems)} chains judged differently from the oracle")

# %% [markdown]
# ## Looking at a disagreement
#
# The first problem where the selector missed: its N chains side by side. Each chain's header says
# whether it is right and where its sketch and thought first disagree; move the slider (or press
# play) to see the sketch that made the verifier reject a right chain.

# %%
j = missed[0] if missed else next(i for i, pool in enumerate(slippy_scored)
                                  if ((pool.scores["consistency"] >= 0.5) != pool.correct).any())
problem, chains, pool = problems[j], slippy_pools[j], slippy_scored[j]
pick = selected(pool)
print(problem.id, "gold", problem.answer, "| selected chain", pick, chains[pick].answer,
      "| consistency", pool.scores["consistency"].tolist(), "| correct", pool.correct.astype(int).tolist())
ChainViewer(chains, problem)

# %% [markdown]
# The selected chain and a right one, step by step (red row: the first step the verifier rejects).

# %%
right = int(np.flatnonzero(pool.correct)[0]) if pool.correct.any() else pick
display(HTML(chain_html(chains[pick], problem)))
display(HTML(chain_html(chains[right], problem)))
