"""Run-directory outputs for people: ``scaling.png`` (+ ``scaling.json``) and ``report.html``.

The report opens from disk (no server, no scripts) and is written from the run record alone
(`vot.run.read_run`), through the jinja2 templates ``report.html.j2`` and ``problem.html.j2``.
``report.html`` has the summary, accuracy by size split into in and out of distribution (with the
oracle pass@k rows beside the strategies), the plot and one row per problem linking to
``report/<problem>.html``. That page says which chain each strategy selected and why
(`vot.explain`), then shows every chain step by step: the step number beside the stated action,
the thought, the sketch (an ``<img>`` of the PNG file in ``sketches/``), what it reads back as, the
scores (computed for display where the run did not score, as for the greedy chain), and the rule a
rejected step breaks (`vot.viewer.chain_rows`). Pages stay small however many problems a run has.
"""
from __future__ import annotations

import json
from pathlib import Path

from vot.run import ChainRecord, ProblemRecord, Run
from vot.verifiers import aggregate

CURVES = {"best_of_n": "best_of_k/{v}", "weighted_best_of_n": "weighted@k/{v}", "self_consistency": "maj@k"}


def scaling_points(summary: dict) -> dict:
    """{series name: [[N, accuracy, low, high, compute], ...]} — what scaling.png plots. Sampling
    strategies get their whole subsampled curve (k = 1, 2, 4, …, N_max); search strategies their
    runs. ``compute`` is the mean compute per problem relative to greedy (``summary["compute"]``;
    ``None`` where the run has no measure of it)."""
    series: dict[str, list] = {}
    curves = summary.get("curves", {})
    compute = summary.get("compute", {})
    groups, pooled = compute.get("groups", {}), compute.get("curves", {})
    verifier = summary.get("selection_verifier", "consistency")
    for group, metric in summary["metrics"].items():
        name, n = group.rsplit("@", 1)
        curve = curves.get(CURVES.get(name, "").format(v=verifier))
        if curve:
            series[name] = [[int(k), v["value"], v["low"], v["high"], pooled.get(k)] for k, v in curve.items()]
            continue
        a = metric["accuracy"]
        series.setdefault(name, []).append([int(n), a["value"], a["low"], a["high"], groups.get(group, {}).get("relative")])
    passk = curves.get("pass@k/oracle", {})
    if passk:
        series["pass@k (oracle)"] = [[int(k), v["value"], v["low"], v["high"], pooled.get(k)] for k, v in passk.items()]
    return {name: sorted(points, key=lambda p: p[0]) for name, points in series.items()}


def series_styles(names: list[str]) -> dict[str, dict]:
    """A matplotlib style per series of scaling.png, told apart where curves coincide (at 100%, or
    a strategy equal to the oracle): each has its own marker, line style and filling, and a small
    sideways ``shift`` (a factor on N, a few percent on the log2 axis). The oracle is black."""
    markers, lines = "os^vD<>ph*", ("-", "--", "-.", ":")
    colours = [f"C{i}" for i in range(10)]
    styles = {}
    for index, name in enumerate(names):
        oracle = "oracle" in name
        styles[name] = {"color": "black" if oracle else colours[index % 10], "marker": markers[index % len(markers)],
                        "linestyle": ":" if oracle else lines[index % len(lines)], "markersize": 6 if index % 2 else 5,
                        "fillstyle": "none" if index % 2 else "full", "alpha": 0.8, "label": name,
                        "shift": 2 ** (0.05 * (index - (len(names) - 1) / 2))}
    return styles


def write_scaling_plot(out: Path, summary: dict) -> Path:
    """Accuracy vs N per strategy on a log2 axis (and vs compute); the plotted numbers, unshifted,
    go to scaling.json. Curves that coincide stay apart (`series_styles`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = scaling_points(summary)
    (out / "scaling.json").write_text(json.dumps(points, indent=2))
    figure, (by_n, by_compute) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    unit = summary.get("compute", {}).get("unit", "greedy@1")
    styles = series_styles(list(points))
    for name, rows in points.items():
        style = dict(styles[name])
        shift = style.pop("shift")
        values = [r[1] for r in rows]
        errors = [[max(r[1] - r[2], 0) for r in rows], [max(r[3] - r[1], 0) for r in rows]]
        by_n.errorbar([r[0] * shift for r in rows], values, yerr=errors, capsize=3, **style)
        costed = [(r[4], r[1]) for r in rows if r[4] is not None and r[4] == r[4] and r[4] > 0]
        if costed and "oracle" not in name:
            by_compute.plot([c * shift for c, _ in costed], [v for _, v in costed], **style)
    by_n.set_xscale("log", base=2)
    by_n.set_xlabel("N (chains per problem; points nudged sideways so equal curves stay visible)", fontsize=8)
    by_compute.set_xscale("log", base=2)
    by_compute.set_xlabel(f"compute per problem (x {unit}: tokens + denoising steps at measured cost)", fontsize=8)
    labels = summary["reference_components"]
    title = f"{summary['config']['task']}" + (f" (reference: {', '.join(labels)})" if labels else "")
    for axis in (by_n, by_compute):
        axis.set_ylabel("accuracy")
        axis.grid(alpha=0.3)
        axis.set_title(title, fontsize=9)
    by_n.legend(fontsize=7)
    figure.tight_layout()
    path = out / "scaling.png"
    figure.savefig(path)
    plt.close(figure)
    return path


def _interval(value: dict | None) -> dict | None:
    return value if value and value.get("n") else None


def accuracy_table(summary: dict, task) -> dict:
    """The report's table: columns ``all``, then each in-distribution size and their pool, then each
    out-of-distribution size and theirs; a row per ``strategy@N`` of ``summary["metrics"]`` and per
    k of the oracle pass@k curve. Cells are ``{value, low, high, n}`` or ``None``."""
    sizes = sorted({int(s) for m in summary["metrics"].values() for s in m.get("by_size", {})})
    inside = [s for s in sizes if s in task.in_distribution]
    outside = [s for s in sizes if s not in task.in_distribution]
    columns = [("all", None, None)]
    for part, chosen in (("in_distribution", inside), ("out_of_distribution", outside)):
        if chosen:
            columns += [(str(s), part, str(s)) for s in chosen]
            if len(chosen) > 1:
                columns.append(("sizes " + ", ".join(map(str, chosen)), part, None))
    relative = summary.get("compute", {}).get("groups", {})

    def cells(overall, by_size, by_part):
        return [_interval(overall) if part is None else _interval((by_size if key else by_part).get(key or part))
                for _, part, key in columns]

    rows = [{"name": group, "oracle": False, "compute": relative.get(group, {}).get("relative"),
             "cells": cells(m["accuracy"], m.get("by_size", {}), m.get("by_distribution", {}))}
            for group, m in summary["metrics"].items()]
    for k, overall in summary.get("curves", {}).get("pass@k/oracle", {}).items():
        by_size = {s: c.get("pass@k/oracle", {}).get(k) for s, c in summary.get("curves_by_size", {}).items()}
        by_part = {p: c.get("pass@k/oracle", {}).get(k) for p, c in summary.get("curves_by_distribution", {}).items()}
        rows.append({"name": f"pass@{k} (oracle)", "oracle": True, "compute": summary.get("compute", {}).get("curves", {}).get(k),
                     "cells": cells(overall, {s: v for s, v in by_size.items() if v}, {p: v for p, v in by_part.items() if v})})
    return {"columns": [{"label": label, "part": part} for label, part, _ in columns], "rows": rows,
            "parts": [(part, len([c for c in columns if c[1] == part])) for part in ("in_distribution", "out_of_distribution")
                      if any(c[1] == part for c in columns)]}


def _problem_context(run: Run, entry: ProblemRecord, input_image: str) -> dict:
    """What ``problem.html.j2`` shows for one problem (sketches opened, every chain read back)."""
    from tasks.parsing import action_sentence
    from vot.explain import chain_score, selections
    from vot.verifiers import ConsistencyVerifier
    from vot.viewer import chain_rows

    cache: dict = {}
    reader = ConsistencyVerifier()  # one per problem: a sketch shared by chains is read once
    rows = {id(r): chain_rows(run.sketched(r, cache), entry.problem, reader) for r in entry.chains}

    def shown(record: ChainRecord, how: str = "min") -> dict[str, float]:
        """The chain's scores: recorded (the pool's), else its step scores combined by ``how``."""
        steps = rows[id(record)]
        labels = [label for label in steps[0].scores if all(label in r.scores for r in steps)] if steps else []
        return record.chain_scores or {label: aggregate([r.scores[label] for r in steps], how) for label in labels}

    def score(record: ChainRecord, label: str, how: str) -> float | None:
        recorded = chain_score(record, label, how)
        return recorded if recorded is not None else shown(record, how).get(label)

    picked = selections(run, entry, score)
    chosen_by: dict[int, list[str]] = {}
    for selection in picked:
        if selection.record is not None and selection.record.strategy == "pool":
            chosen_by.setdefault(id(selection.record), []).append(selection.group)
    groups = []
    for group, records in entry.groups().items():
        chains = [{"record": r, "rows": rows[id(r)], "scores": shown(r), "chosen_by": chosen_by.get(id(r), []),
                   "srcs": [f"../{step.sketch_path}" if step.sketch_path else None for step in rows[id(r)]],
                   "open": r.selected or r.strategy == "greedy" or id(r) in chosen_by} for r in records]
        groups.append({"name": group, "result": records[0].result, "chains": chains,
                       "scored": "recorded" if records[0].chain_scores else "min over steps; computed here where the run did not score"})
    return {"run": run, "problem": entry.problem, "input_image": f"../{input_image}", "groups": groups,
            "actions": [action_sentence(a) for a in entry.problem.actions], "selections": picked}


def write_report(run: Run) -> Path:
    """report.html (summary, accuracy by size in and out of distribution, pass@k, the plot, one row
    per problem) plus report/<problem>.html with each strategy's selection and every chain's steps.
    Every file named is in the run directory; nothing but the run record is read."""
    from vot.chain import safe_name
    from vot.templating import render

    out, summary, task = run.dir, run.summary, run.task
    (out / "report").mkdir(exist_ok=True)
    problems = []
    for entry in run.finished:
        page = f"report/{safe_name(entry.id)}.html"
        input_image = f"sketches/{safe_name(entry.id)}/input.png"
        if not (out / input_image).exists():  # a run directory from before problems.jsonl
            (out / input_image).parent.mkdir(parents=True, exist_ok=True)
            entry.problem.image.save(out / input_image)
        context = _problem_context(run, entry, input_image)
        (out / page).write_text(render("problem.html.j2", **context))
        problems.append({"entry": entry, "page": page, "inside": entry.size in task.in_distribution,
                         "picked": {s.group: s for s in context["selections"]}})
    groups = list(dict.fromkeys(g for p in problems for g in p["picked"]))
    path = out / "report.html"
    path.write_text(render("report.html.j2", run=run, summary=summary, table=accuracy_table(summary, task),
                           problems=problems, groups=groups))
    return path
