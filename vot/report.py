"""Run-directory outputs for people: ``scaling.png`` (+ ``scaling.json``) and ``report.html``.

The report is one static HTML file that opens from disk (no server, no scripts): per problem, each
strategy's chains with their thoughts, sketches (``<img>`` tags pointing at the PNG files beside it),
verifier scores and whether the selected answer was right.
"""
from __future__ import annotations

import html
import json
from pathlib import Path


def scaling_points(summary: dict) -> dict:
    """{series name: [[N, accuracy, low, high], ...]} — what scaling.png plots."""
    series: dict[str, list] = {}
    for group, metric in summary["metrics"].items():
        name, n = group.rsplit("@", 1)
        a = metric["accuracy"]
        series.setdefault(name, []).append([int(n), a["value"], a["low"], a["high"]])
    passk = summary.get("curves", {}).get("pass@k/oracle", {})
    if passk:
        series["pass@k (oracle)"] = [[int(k), v["value"], v["low"], v["high"]] for k, v in passk.items()]
    return {name: sorted(points) for name, points in series.items()}


def write_scaling_plot(out: Path, summary: dict) -> Path:
    """Accuracy vs N per strategy on a log2 axis; the plotted numbers go to scaling.json."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = scaling_points(summary)
    (out / "scaling.json").write_text(json.dumps(points, indent=2))
    figure, axis = plt.subplots(figsize=(6, 4), dpi=100)
    for name, rows in points.items():
        ns = [r[0] for r in rows]
        values = [r[1] for r in rows]
        errors = [[r[1] - r[2] for r in rows], [r[3] - r[1] for r in rows]]
        style = dict(linestyle="--", color="grey") if "oracle" in name else {}
        axis.errorbar(ns, values, yerr=errors, marker="o", capsize=3, label=name, **style)
    axis.set_xscale("log", base=2)
    axis.set_xlabel("N (chains per problem)")
    axis.set_ylabel("accuracy")
    labels = summary["reference_components"]
    axis.set_title(f"{summary['config']['task']}" + (f" (reference: {', '.join(labels)})" if labels else ""), fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    path = out / "scaling.png"
    figure.savefig(path)
    plt.close(figure)
    return path


def _chain_html(record: dict) -> str:
    chain = record["chain"]
    rows = []
    for step in chain["steps"]:
        image = f'<img src="{html.escape(step["sketch_path"])}" alt="sketch" width="96">' if step.get("sketch_path") else ""
        scores = ", ".join(f"{k} {v:.2f}" for k, v in step["scores"].items())
        css = ' class="bad"' if any(v < 0.5 for v in step["scores"].values()) else ""
        rows.append(f"<tr{css}><td>{html.escape(step['thought'])}</td><td>{image}</td><td>{html.escape(scores)}</td></tr>")
    mark = "selected " if record["selected"] else ""
    verdict = "correct" if record["correct"] else "wrong"
    stopped = "" if chain["finished"] else " (unfinished)"
    head = f"{mark}chain {chain['sample']}: {html.escape(str(chain['answer']))} — {verdict}{stopped}"
    return f'<details class="{verdict}"><summary>{head}</summary><table>{"".join(rows)}</table></details>'


def write_report(out: Path, summary: dict, records: list[dict], problems) -> Path:
    """report.html next to results.jsonl; every image it names is a file in the run directory."""
    by_problem: dict[str, list[dict]] = {}
    for record in records:
        by_problem.setdefault(record["problem_id"], []).append(record)
    sections = []
    for problem in problems:
        chains = by_problem.get(problem.id)
        if not chains:
            continue
        groups: dict[str, list[dict]] = {}
        for record in chains:
            groups.setdefault(f"{record['strategy']}@{record['n']}", []).append(record)
        parts = []
        for group, items in groups.items():
            result = items[0]["result"]
            verdict = "" if result is None else (" — selected answer correct" if result["correct"] else " — selected answer wrong")
            parts.append(f"<h3>{html.escape(group)}{verdict}</h3>" + "".join(_chain_html(r) for r in items))
        prompt = html.escape(problem.prompt).replace("\n", "<br>")
        sections.append(f'<section><h2>{html.escape(problem.id)}</h2><p class="prompt">{prompt}</p>'
                        f"<p>gold answer: {html.escape(problem.answer)}</p>{''.join(parts)}</section>")
    table = "".join(
        f"<tr><td>{html.escape(g)}</td><td>{100 * m['accuracy']['value']:.1f}%</td>"
        f"<td>[{100 * m['accuracy']['low']:.1f}, {100 * m['accuracy']['high']:.1f}]</td><td>{m['accuracy']['n']}</td></tr>"
        for g, m in summary["metrics"].items()
    )
    reference = ", ".join(summary["reference_components"]) or "none"
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>vot run: {html.escape(summary['config']['task'])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}} img{{image-rendering:pixelated;border:1px solid #ccc}}
td{{padding:2px 8px;vertical-align:top}} tr.bad td{{background:#fde}} details.correct>summary{{color:#070}}
details.wrong>summary{{color:#a00}} .prompt{{font-size:90%;color:#333}}</style></head><body>
<h1>{html.escape(summary['config']['task'])}</h1>
<p>Reference components: {html.escape(reference)}. Selection verifier: {html.escape(summary['selection_verifier'])}.
Device: {html.escape(summary['device'])}.</p>
<img src="scaling.png" alt="accuracy vs N" width="480">
<table><tr><th>strategy@N</th><th>accuracy</th><th>95% CI</th><th>problems</th></tr>{table}</table>
{''.join(sections)}
</body></html>"""
    path = out / "report.html"
    path.write_text(page)
    return path
