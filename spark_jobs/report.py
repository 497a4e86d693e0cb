"""Report job: one HTML page of how the model is doing over time, with PNG plots.

    python -m spark_jobs.report

Reads the history MLflow already holds (every training run's test metrics, every promotion's
champion-vs-challenger metrics and decision, every scoring run's drift), the lake's daily
volumes, its score ledger (late, restated, withdrawn and missing days) and the served quality
of each matured day (fraudops.model.served), draws them, writes reports/index.html beside the
PNGs and logs the lot to MLflow. A retry with the same --run-id after success returns the
summary it wrote.
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import pandas as pd  # noqa: E402

from fraudops.core import cli, config, scored, storage  # noqa: E402
from fraudops.core.lake import Lake  # noqa: E402
from fraudops.model import served, tracking  # noqa: E402
from fraudops.model.profile import PRODUCTION  # noqa: E402

log = logging.getLogger(__name__)

METRICS = ("average_precision", "roc_auc", PRODUCTION.card_precision)
PSI_ALERT = PRODUCTION.psi_alert


def runs_of(step: str) -> pd.DataFrame:
    runs = mlflow.search_runs(
        experiment_names=[tracking.EXPERIMENT],
        filter_string=f"tags.`{tracking.TAG_STEP}` = '{step}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time ASC"],
    )
    if runs.empty:
        return runs
    runs["as_of"] = pd.to_datetime(runs[f"tags.{tracking.TAG_AS_OF}"])
    # A re-run of a day replaces it in the history: keep the latest run of each day.
    return runs.drop_duplicates("as_of", keep="last").sort_values("as_of")


def _save(fig, folder: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(folder / name, dpi=100)
    plt.close(fig)
    return name


def plot_metrics(promotions: pd.DataFrame, trainings: pd.DataFrame, folder: Path) -> str | None:
    if promotions.empty and trainings.empty:
        return None
    fig, axes = plt.subplots(len(METRICS), 1, figsize=(9, 8), sharex=True)
    for ax, metric in zip(axes, METRICS):
        if not promotions.empty:
            ax.plot(promotions["as_of"], promotions.get(f"metrics.challenger_{metric}"), "o-",
                    label="challenger")
            if f"metrics.champion_{metric}" in promotions:
                ax.plot(promotions["as_of"], promotions[f"metrics.champion_{metric}"], "s--",
                        label="champion (same test window)")
            promoted = promotions[promotions["tags.fraudops.decision"].isin(
                ["promoted", "refreshed", "first_champion"])]
            ax.scatter(promoted["as_of"], promoted.get(f"metrics.challenger_{metric}"),
                       s=160, facecolors="none", edgecolors="green", label="promoted")
        elif f"metrics.test_{metric}" in trainings:
            ax.plot(trainings["as_of"], trainings[f"metrics.test_{metric}"], "o-",
                    label="challenger")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower left", fontsize=8)
    axes[0].set_title("Test metrics of each day's challenger and the champion")
    return _save(fig, folder, "metrics.png")


def plot_volumes(lake: Lake, folder: Path) -> str | None:
    days = storage.read_json(lake.clean_days, default={}) or {}
    if not days:
        return None
    frame = pd.DataFrame.from_dict(days, orient="index")
    frame.index = pd.to_datetime(frame.index)
    frame = frame.sort_index()
    quarantined = pd.Series(0, index=frame.index, dtype=float)
    for entry in (storage.read_json(lake.manifest, default={}) or {}).values():
        day = pd.Timestamp(entry.get("day"))
        if day in quarantined.index:
            quarantined[day] += sum(entry.get("quarantined", {}).values())
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    top.bar(frame.index, frame["rows"], label="clean rows")
    top.bar(frame.index, quarantined, bottom=frame["rows"], color="orange", label="quarantined")
    top.set_ylabel("transactions")
    top.legend(fontsize=8)
    top.set_title("Daily volume and fraud rate")
    bottom.plot(frame.index, 100 * frame.get("frauds", 0) / frame["rows"], color="red")
    bottom.set_ylabel("fraud rate, %")
    bottom.grid(alpha=0.3)
    return _save(fig, folder, "volumes.png")


def plot_drift(scorings: pd.DataFrame, folder: Path) -> str | None:
    columns = [c for c in scorings.columns if c.startswith("metrics.psi_") and c != "metrics.psi_max"]
    if scorings.empty or not columns:
        return None
    fig, ax = plt.subplots(figsize=(9, 4))
    for column in columns:
        ax.plot(scorings["as_of"], scorings[column], label=column.removeprefix("metrics.psi_"),
                lw=1)
    ax.axhline(PSI_ALERT, color="red", ls="--", label=f"alert ({PSI_ALERT})")
    ax.set(ylabel="PSI vs the champion's training window", title="Feature drift")
    ax.legend(fontsize=6, ncol=3)
    return _save(fig, folder, "drift.png")


def plot_served(lake: Lake, folder: Path) -> str | None:
    """What a fraud team watches: the realized AP and card precision@k of what served each
    day, once its labels matured (fraudops.model.served), coloured by the model version."""
    values = served.measurements(lake)
    if not values:
        return None
    frame = pd.DataFrame.from_dict(values, orient="index")
    frame.index = pd.to_datetime(frame.index)
    frame = frame.sort_index()
    cards = sorted(c for c in frame.columns if c.startswith("card_precision_at_"))
    fig, axes = plt.subplots(1 + len(cards), 1, figsize=(9, 5), sharex=True, squeeze=False)
    for ax, metric in zip(axes[:, 0], [served.AP, *cards]):
        for version, rows in frame.groupby("model_version", sort=False):
            ax.plot(rows.index, rows[metric].astype(float), "o", ms=4, label=f"v{version}")
        ax.set_ylabel(f"served {metric}")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncol=6, title="model version that served the day")
    axes[0, 0].set_title("Served quality on matured labels, per served day")
    return _save(fig, folder, "served.png")


def decisions_table(promotions: pd.DataFrame) -> str:
    if promotions.empty:
        return "<p>No promotion decision yet.</p>"
    rows = []
    for _, run in promotions.iterrows():
        rows.append(
            "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
                run["as_of"].date(), run.get("tags.fraudops.decision", ""),
                run.get("params.challenger_version", ""), run.get("params.champion_version", ""),
                _fmt(run.get("metrics.challenger_average_precision")),
                _fmt(run.get("metrics.champion_average_precision")),
                _fmt(run.get("metrics.ap_diff_ci_low")), _fmt(run.get("metrics.ap_diff_ci_high")),
                run.get("tags.fraudops.reason", ""))) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in (
        "day", "decision", "challenger", "champion before", "challenger AP", "champion AP",
        "AP diff CI low", "AP diff CI high", "reason"))
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def days_section(lake: Lake) -> str:
    """Which days were scored, late, restated (with why) or missing (no file by the last run)."""
    entries = scored.ledger(lake)
    if not entries:
        return "<p>No day scored yet.</p>"
    days = sorted(storage.read_json(lake.clean_days, default={}) or {})
    status = scored.status(lake, days)
    last = max(e["as_of"] for e in entries.values())
    expected = pd.date_range(min(entries), last).strftime("%Y-%m-%d")
    missing = [d for d in expected if d not in days and d not in entries]
    rows = [(d, "late", f"scored first by the run of {entries[d]['first_as_of']}")
            for d in status["late_days"]]
    rows += [(d, "withdrawn" if e.get("withdrawn") else "restated",
              "; ".join(f"{r['as_of']}: {r['reason']} (v{r['previous_model_version']} "
                        f"→ v{e['model_version']})" for r in e["restatements"]))
             for d, e in entries.items() if e.get("restatements")]
    rows += [(d, "missing", f"no file by the run of {last}") for d in missing]
    counts = (f"<p>{status['days_scored']} day(s) scored up to the run of {last}: "
              f"{len(status['late_days'])} late, {status['days_restated']} restated "
              f"({status['restatements']} restatement(s)), {status['days_withdrawn']} "
              f"withdrawn, {len(missing)} missing, {status['stale_scores']} stale.</p>")
    if not rows:
        return counts
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in sorted(rows))
    return f"{counts}<table><tr><th>day</th><th>what</th><th>detail</th></tr>{body}</table>"


def _fmt(value) -> str:
    return "" if value is None or pd.isna(value) else f"{value:.4f}"


def build(lake: Lake, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    trainings, promotions, scorings = runs_of("train"), runs_of("promote"), runs_of("score")
    images = [p for p in (plot_metrics(promotions, trainings, folder),
                          plot_served(lake, folder), plot_volumes(lake, folder),
                          plot_drift(scorings, folder)) if p]
    champion = "(none)"
    if not promotions.empty and "tags.fraudops.champion_version" in promotions:
        champion = promotions["tags.fraudops.champion_version"].dropna().iloc[-1]
    body = "\n".join([
        f"<h1>{tracking.MODEL_NAME}: model health</h1>",
        f"<p>Lake <code>{html.escape(lake.root)}</code>; tracking "
        f"<code>{html.escape(mlflow.get_tracking_uri())}</code>; champion version "
        f"<b>{html.escape(str(champion))}</b>; {len(trainings)} training run(s), "
        f"{len(promotions)} promotion decision(s), {len(scorings)} scoring run(s).</p>",
        "<h2>Promotion decisions</h2>", decisions_table(promotions),
        "<h2>Scored days</h2>", days_section(lake),
        *[f'<h2>{name.removesuffix(".png").title()}</h2><img src="{name}" alt="{name}">'
          for name in images],
    ])
    page = folder / "index.html"
    page.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>fraudops report</title>"
        "<style>body{font-family:sans-serif;max-width:1000px;margin:auto}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 6px}img{max-width:100%}</style></head><body>"
        f"{body}</body></html>\n")
    return page


def run(lake: Lake, run_id: str, folder: Path | None = None) -> dict:
    done = storage.read_json(lake.run_summary("report", run_id))
    if done is not None:
        log.info("run %s wrote its report already: %s", run_id, done["report"])
        return done
    with tracking.fail_closed(f"reporting for run {run_id}"):
        tracking.setup()
        page = build(lake, folder or config.reports_dir())
        with tracking.start_step_run("report", run_id, "report"):
            mlflow.log_artifacts(str(page.parent), artifact_path="report")
    log.info("report written to %s", page)
    summary = {"run_id": run_id, "report": str(page)}
    storage.write_json(lake.run_summary("report", run_id), summary)
    return summary


def main(argv: list[str] | None = None) -> dict:
    parser = cli.parser(__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=None,
                        help="folder for index.html and the plots (default: ./reports)")
    args = parser.parse_args(argv)
    cli.setup_logging()
    summary = run(Lake.from_env(args.lake_root), cli.run_id(args.run_id), args.output)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
