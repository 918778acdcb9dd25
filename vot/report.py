"""Run-directory outputs for people: ``scaling.png`` (+ ``scaling.json``) and ``report.html``.

The report opens from disk (no server, no scripts): ``report.html`` has the summary, the plot and one
row per problem linking to ``report/<problem>.html``, which shows each strategy's chains with their
thoughts, sketches (``<img>`` tags pointing at the PNG files in ``sketches/``), verifier scores and
whether the selected answer was right. Pages stay small however many problems a run has.
"""
from __future__ import annotations

import html
import json
from pathlib import Path


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


def write_scaling_plot(out: Path, summary: dict) -> Path:
    """Accuracy vs N per strategy on a log2 axis; the plotted numbers go to scaling.json."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = scaling_points(summary)
    (out / "scaling.json").write_text(json.dumps(points, indent=2))
    figure, (by_n, by_compute) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    colours = plt.get_cmap("tab10")
    markers = "os^vD<>ph*"
    unit = summary.get("compute", {}).get("unit", "greedy@1")
    for index, (name, rows) in enumerate(points.items()):
        values = [r[1] for r in rows]
        errors = [[max(r[1] - r[2], 0) for r in rows], [max(r[3] - r[1], 0) for r in rows]]
        style = dict(linestyle="--", color="black") if "oracle" in name else dict(color=colours(index % 10))
        style |= dict(marker=markers[index % len(markers)], markersize=5, capsize=3, label=name, alpha=0.85)
        by_n.errorbar([r[0] for r in rows], values, yerr=errors, **style)
        costed = [(r[4], r[1]) for r in rows if r[4] is not None and r[4] == r[4] and r[4] > 0]
        if costed and "oracle" not in name:
            by_compute.plot([c for c, _ in costed], [v for _, v in costed], **{k: v for k, v in style.items() if k != "capsize"})
    by_n.set_xscale("log", base=2)
    by_n.set_xlabel("N (chains per problem)")
    by_compute.set_xscale("log", base=2)
    by_compute.set_xlabel(f"compute per problem (x {unit}: tokens + denoising steps at measured cost)")
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


def _chain_html(record: dict, prefix: str) -> str:
    chain = record["chain"]
    rows = []
    for step in chain["steps"]:
        src = prefix + step["sketch_path"] if step.get("sketch_path") else None
        image = f'<img src="{html.escape(src)}" alt="sketch" width="96">' if src else ""
        scores = ", ".join(f"{k} {v:.2f}" for k, v in step["scores"].items())
        css = ' class="bad"' if any(v < 0.5 for v in step["scores"].values()) else ""
        rows.append(f"<tr{css}><td>{html.escape(step['thought'])}</td><td>{image}</td><td>{html.escape(scores)}</td></tr>")
    mark = "selected " if record["selected"] else ""
    verdict = "correct" if record["correct"] else "wrong"
    stopped = "" if chain["finished"] else " (unfinished)"
    head = f"{mark}chain {chain['sample']}: {html.escape(str(chain['answer']))} — {verdict}{stopped}"
    opened = " open" if record["selected"] else ""
    return f'<details class="{verdict}"{opened}><summary>{head}</summary><table>{"".join(rows)}</table></details>'


STYLE = """<style>body{font-family:sans-serif;margin:2em;max-width:64em} img{image-rendering:pixelated;border:1px solid #ccc}
td,th{padding:2px 8px;vertical-align:top;text-align:left} tr.bad td{background:#fde} details.correct>summary{color:#070}
details.wrong>summary{color:#a00} .prompt{font-size:90%;color:#333} .ok{color:#070} .no{color:#a00}</style>"""


def _groups(records: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for record in records:
        groups.setdefault(f"{record['strategy']}@{record['n']}", []).append(record)
    return groups


def _problem_page(problem, records: list[dict], input_image: str) -> str:
    parts = []
    for group, items in _groups(records).items():
        result = items[0]["result"]
        verdict = "" if result is None else (" — selected answer correct" if result["correct"] else " — selected answer wrong")
        parts.append(f"<h3>{html.escape(group)}{verdict}</h3>" + "".join(_chain_html(r, "../") for r in items))
    prompt = html.escape(problem.prompt).replace("\n", "<br>")
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(problem.id)}</title>{STYLE}</head><body>'
            f'<p><a href="../report.html">back to the run</a></p><h2>{html.escape(problem.id)}</h2>'
            f'<img src="../{html.escape(input_image)}" alt="input image" width="128">'
            f'<p class="prompt">{prompt}</p><p>gold answer: {html.escape(problem.answer)}</p>{"".join(parts)}</body></html>')


def write_report(out: Path, summary: dict, records: list[dict], problems) -> Path:
    """report.html (summary, scaling plot, one row per problem) plus report/<problem>.html with every
    chain's thoughts, sketches and scores. Every file named is in the run directory."""
    from vot.chain import safe_name

    by_problem: dict[str, list[dict]] = {}
    for record in records:
        by_problem.setdefault(record["problem_id"], []).append(record)
    (out / "report").mkdir(exist_ok=True)
    group_names = list(dict.fromkeys(g for r in records for g in [f"{r['strategy']}@{r['n']}"] if r["result"] is not None))
    rows = []
    for problem in problems:
        chains = by_problem.get(problem.id)
        if not chains:
            continue
        page = f"report/{safe_name(problem.id)}.html"
        input_image = f"sketches/{safe_name(problem.id)}/input.png"
        if not (out / input_image).exists():
            (out / input_image).parent.mkdir(parents=True, exist_ok=True)
            problem.image.save(out / input_image)
        (out / page).write_text(_problem_page(problem, chains, input_image))
        results = {g: items[0]["result"] for g, items in _groups(chains).items() if items[0]["result"] is not None}
        cells = "".join(
            f'<td class="{"ok" if results[g]["correct"] else "no"}">{"✓" if results[g]["correct"] else "✗"}</td>'
            if g in results else "<td></td>" for g in group_names)
        rows.append(f'<tr><td><a href="{html.escape(page)}">{html.escape(problem.id)}</a></td>{cells}</tr>')
    table = "".join(
        f"<tr><td>{html.escape(g)}</td><td>{100 * m['accuracy']['value']:.1f}%</td>"
        f"<td>[{100 * m['accuracy']['low']:.1f}, {100 * m['accuracy']['high']:.1f}]</td><td>{m['accuracy']['n']}</td></tr>"
        for g, m in summary["metrics"].items()
    )
    reference = ", ".join(summary["reference_components"]) or "none"
    head = "".join(f"<th>{html.escape(g)}</th>" for g in group_names)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>vot run: {html.escape(summary['config']['task'])}</title>{STYLE}</head><body>
<h1>{html.escape(summary['config']['task'])}</h1>
<p>Reference components: {html.escape(reference)}. Selection verifier: {html.escape(summary['selection_verifier'])}.
Device: {html.escape(summary['device'])}.</p>
<img src="scaling.png" alt="accuracy vs N" width="480">
<table><tr><th>strategy@N</th><th>accuracy</th><th>95% CI</th><th>problems</th></tr>{table}</table>
<h2>Problems</h2><table><tr><th>problem</th>{head}</tr>{''.join(rows)}</table>
</body></html>"""
    path = out / "report.html"
    path.write_text(page)
    return path
