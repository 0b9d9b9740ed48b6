"""Paper-style tables, built only from metrics files that rules wrote.

Every cell traces back to a metrics CSV: the table CSV carries the source file of each
row, and nothing here computes a metric. Each kind writes

    <prefix>.csv        long: one row per (identity, reference) with every metric ± SE and its source file
    <prefix>.paper.csv  the paper's layout (methods x dataset/pair column groups), ours and quoted rows,
                        each row with its source (a metrics file, or "quoted: <paper, table>")
    <prefix>.md         the paper's layout, then the full detail
    <prefix>.tex        the paper's layout as booktabs tabulars

Published numbers (:mod:`lqrppg.published`) are printed in their own block, labelled as quoted,
never in the same block as this project's numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lqrppg import published
from lqrppg.errors import DataError
from lqrppg.io import atomic_path

METRIC_ORDER = ["MAE", "RMSE", "MAPE", "Pearson", "SNR", "MACC"]
REFERENCE_TITLE = {
    "label": "scored against the contact-PPG label",
    "true": "scored against the true pulse (synthetic data only)",
}


def _read_tables(paths: Sequence[Path], required: set[str], what: str) -> pd.DataFrame:
    """The CSVs at ``paths`` as one frame with a ``source`` column; DataError naming a bad file."""
    if not paths:
        raise DataError(f"no {what} files given to build a table from")
    frames = []
    for path in paths:
        try:
            frame = pd.read_csv(path)
        except (OSError, pd.errors.ParserError) as err:
            raise DataError(f"cannot read {what} file {path}: {err}") from None
        missing = required - set(frame.columns)
        if missing:
            raise DataError(f"{what} file {path} lacks columns {sorted(missing)}")
        frames.append(frame.assign(source=str(path)))
    return pd.concat(frames, ignore_index=True)


def read_metrics(paths: Sequence[Path]) -> pd.DataFrame:
    return _read_tables(paths, {"reference", "metric", "value", "se", "n"}, "metrics")


def wide_table(metrics: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per (keys..., reference), columns ``<metric>`` and ``<metric>_se``."""
    index = [*keys, "reference"]
    values = metrics.pivot_table(index=index, columns="metric", values="value", aggfunc="first")
    errors = metrics.pivot_table(index=index, columns="metric", values="se", aggfunc="first")
    meta = metrics.groupby(index)[["n", "source"]].first()
    order = [m for m in METRIC_ORDER if m in values.columns]
    wide = pd.concat(
        [values[order], errors[order].add_suffix("_se"), meta], axis=1
    ).reset_index()
    columns = [*index, *[c for m in order for c in (m, f"{m}_se")], "n", "source"]
    return wide[columns]


def _cell(value: float, se: float, digits: int) -> str:
    if not np.isfinite(value):
        return "–"
    text = f"{value:.{digits}f}"
    return f"{text} ± {se:.{digits}f}" if np.isfinite(se) else text


def markdown(wide: pd.DataFrame, keys: Sequence[str], title: str) -> str:
    """Markdown: one table per reference, metric cells as ``value ± SE``."""
    metrics = [m for m in METRIC_ORDER if m in wide.columns]
    lines = [f"# {title}", ""]
    for reference, block in wide.groupby("reference", sort=False):
        lines += [f"## {REFERENCE_TITLE.get(reference, reference)}", ""]
        header = [*keys, *[f"{m}{' (bpm)' if m in ('MAE', 'RMSE') else ''}" for m in metrics], "n"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for row in block.itertuples(index=False):
            r = row._asdict()
            cells = [str(r[k]) for k in keys]
            cells += [_cell(r[m], r[f"{m}_se"], 3 if m in ("Pearson", "MACC") else 2) for m in metrics]
            cells.append(str(int(r["n"])))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("Values are mean ± standard error over videos; SE formulas are named in the CSV's sources.")
    return "\n".join(lines) + "\n"


TABLES = {
    # kind: (identity columns of a row, title)
    "unsupervised": (["dataset", "method"], "Unsupervised methods: whole-video heart rate"),
    "intra": (["dataset", "protocol", "model"],
              "Intra-dataset: whole-video heart rate (k-fold: subject-wise folds pooled; published: the fixed split)"),
    "cross": (["train", "test", "model"], "Cross-dataset: whole-video heart rate"),
    "ablation": (["group", "dataset", "model"], "Ablations on the synthetic benchmark: whole-video heart rate"),
}
#: The paper's layout of each kind: (row key, column-group key, metrics shown).
PAPER_LAYOUT = {
    "unsupervised": ("method", "dataset", ["MAE", "MAPE"]),
    "intra": ("model", "dataset", ["MAE", "RMSE", "Pearson"]),
    "cross": ("model", "pair", ["MAE", "RMSE", "MAPE", "Pearson", "SNR"]),
    "ablation": ("model", "dataset", ["MAE", "RMSE", "Pearson"]),
}
METRIC_LABEL = {"MAE": "MAE", "RMSE": "RMSE", "MAPE": "MAPE", "Pearson": "ρ", "SNR": "SNR", "MACC": "MACC"}
LATEX_METRIC = {"Pearson": r"$\rho$"}


def _as_model_rows(unsupervised: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Unsupervised methods need no training: the same numbers stand in intra and cross rows."""
    rows = unsupervised.rename(columns={"method": "model"})
    if kind == "intra":
        return rows.assign(protocol="all videos")
    return rows.assign(train="(none)", test=rows["dataset"])


def _column_group(metrics: pd.DataFrame, kind: str) -> pd.Series:
    if kind == "cross":
        return metrics["train"].astype(str) + " → " + metrics["test"].astype(str)
    if kind == "intra" and "protocol" in metrics.columns:
        # One dataset under two training protocols (k-fold and a published split) gets two column
        # groups; unsupervised rows ("all videos") stand in the dataset's plain group.
        dataset, protocol = metrics["dataset"].astype(str), metrics["protocol"].astype(str)
        trained = protocol != "all videos"
        both = metrics[trained].groupby("dataset")["protocol"].nunique()
        split = dataset.map(lambda d: both.get(d, 0) > 1) & trained
        return dataset.where(~split, dataset + " (" + protocol + ")")
    return metrics["dataset"].astype(str)


def paper_table(long: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The paper's layout: one row per method, a (column group, metric) column per cell.

    ``long`` has columns row key, group, metric, value, se (NaN when none), source.
    Cells are "value ± se" strings (or "value"); the row's sources are joined in ``source``.
    """
    row_key, _, shown = PAPER_LAYOUT[kind]
    long = long[long["metric"].isin(shown)]
    groups = list(dict.fromkeys(long["group"]))
    rows = []
    for name, block in long.groupby(row_key, sort=False):
        row: dict[str, object] = {row_key: name}
        for r in block.itertuples(index=False):
            digits = 3 if r.metric in ("Pearson", "MACC") else 2
            row[f"{r.group} | {METRIC_LABEL[r.metric]}"] = _cell(float(r.value), float(r.se), digits)
        row["source"] = "; ".join(dict.fromkeys(str(s) for s in block["source"]))
        rows.append(row)
    columns = [row_key, *[f"{g} | {METRIC_LABEL[m]}" for g in groups for m in shown], "source"]
    table = pd.DataFrame(rows)
    for c in columns:
        if c not in table.columns:
            table[c] = "–"
    table = table[columns].fillna("–")
    # keep only metric columns some row fills (a quoted source may lack e.g. RMSE for a dataset)
    keep = [c for c in columns if c in (row_key, "source") or (table[c] != "–").any()]
    return table[keep]


def _ours_long(wide: pd.DataFrame, kind: str, reference: str) -> pd.DataFrame:
    """Our wide rows of one reference as long (row key, group, metric, value, se, source)."""
    row_key, _, shown = PAPER_LAYOUT[kind]
    block = wide[wide["reference"] == reference]
    if block.empty:
        return pd.DataFrame(columns=[row_key, "group", "metric", "value", "se", "source"])
    groups = _column_group(block, kind)
    out = []
    for (i, r), group in zip(block.iterrows(), groups, strict=True):
        for m in shown:
            if m in block.columns:
                out.append({row_key: r[row_key], "group": group, "metric": m, "value": r[m], "se": r[f"{m}_se"],
                            "source": r["source"]})
    return pd.DataFrame(out)


def _quoted_long(kind: str) -> pd.DataFrame:
    if kind == "ablation":
        return pd.DataFrame()
    rows = pd.DataFrame(published.quoted_rows(kind))
    if kind == "cross":
        rows["group"] = rows["train"] + " → " + rows["test"]
    else:
        rows["group"] = rows["dataset"]
    return rows.assign(se=np.nan)


def _markdown_grid(table: pd.DataFrame) -> list[str]:
    header = [str(c).replace(" | ", " ") for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return lines


def _latex_escape(text: str) -> str:
    out = str(text)
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("±", r"$\pm$"), ("→", r"$\to$"), ("ρ", r"$\rho$"), ("–", "--"), ("§", r"\S{}"), ("×", r"$\times$"),
                 ("−", "--")):
        out = out.replace(a, b)
    return out


def latex_tabular(table: pd.DataFrame, caption: str) -> str:
    """A booktabs tabular of a paper-layout table: grouped header (column group, then metric)."""
    row_key = table.columns[0]
    cells = [c for c in table.columns if c not in (row_key, "source")]
    groups = list(dict.fromkeys(c.split(" | ")[0] for c in cells))
    spans = [(g, [c for c in cells if c.split(" | ")[0] == g]) for g in groups]
    lines = [f"% {_latex_escape(caption)}", r"\begin{tabular}{l" + "c" * len(cells) + "}", r"\toprule"]
    lines.append(" & ".join([""] + [rf"\multicolumn{{{len(cs)}}}{{c}}{{{_latex_escape(g)}}}" for g, cs in spans])
                 + r" \\")
    rules, col = [], 2
    for _, cs in spans:
        rules.append(rf"\cmidrule(lr){{{col}-{col + len(cs) - 1}}}")
        col += len(cs)
    lines.append(" ".join(rules))
    lines.append(" & ".join([_latex_escape(row_key)] + [_latex_escape(c.split(" | ")[1]) for c in cells]) + r" \\")
    lines.append(r"\midrule")
    for row in table.itertuples(index=False):
        values = list(dict(zip(table.columns, row, strict=True)).values())
        lines.append(" & ".join(_latex_escape(v) for v in values[: 1 + len(cells)]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def write_table(kind: str, metric_files: Sequence[Path], out_prefix: Path,
                unsupervised_files: Sequence[Path] = (), groups: Sequence[tuple[str, str]] = ()) -> pd.DataFrame:
    """Write the table files of ``kind`` (see the module docstring); returns the long table.

    ``groups`` (ablation only) names the ablation group of each metrics file, in order.
    """
    keys, title = TABLES[kind]
    if kind == "ablation":
        # one file can belong to two groups (the reference model of each): read it once per group
        if len(groups) != len(metric_files):
            raise DataError(f"ablation table: {len(metric_files)} metrics files but {len(groups)} group names")
        metrics = pd.concat([read_metrics([f]).assign(group=g) for f, g in zip(metric_files, groups, strict=True)],
                            ignore_index=True)
    else:
        metrics = read_metrics(metric_files)
    if kind in ("intra", "ablation"):
        # k-fold metrics files say "intra"; the table names the protocol a reader would look for.
        metrics = metrics.assign(dataset=metrics["test"], protocol=metrics["protocol"].replace({"intra": "k-fold"}))
    if unsupervised_files:
        metrics = pd.concat([metrics, _as_model_rows(read_metrics(unsupervised_files), kind)], ignore_index=True)
    missing = [k for k in keys if k not in metrics.columns]
    if missing:
        raise DataError(f"metrics files lack identity columns {missing}")
    wide = wide_table(metrics, keys).sort_values([*keys, "reference"], ignore_index=True)

    # The paper's layout: our rows per reference, then the quoted rows, each its own block.
    blocks: list[tuple[str, pd.DataFrame]] = []
    group_frames = [("", wide)] if kind != "ablation" else list(wide.groupby("group", sort=False))
    for group, part in group_frames:
        for reference in dict.fromkeys(part["reference"]):
            label = f"This run, {REFERENCE_TITLE.get(reference, reference)}" + (f" — {group}" if group else "")
            blocks.append((label, paper_table(_ours_long(part, kind, reference), kind)))
    quoted = _quoted_long(kind)
    if not quoted.empty:
        blocks.append((f"Published ({quoted['source'].iloc[0]}; not computed here)", paper_table(quoted, kind)))

    lines = [f"# {title}", ""]
    tex = [f"% {title}: generated by `lqrppg tables {kind}` from metrics files; quoted rows are marked", ""]
    paper_rows = []
    for label, table in blocks:
        lines += [f"## {label}", "", *_markdown_grid(table), ""]
        tex.append(latex_tabular(table, label))
        paper_rows.append(table.assign(block=label))
    detail = markdown(wide, keys, "Detail: every metric ± SE").splitlines()
    lines += ["", *["#" + line if line.startswith("#") else line for line in detail]]
    with atomic_path(out_prefix.with_suffix(".csv")) as tmp:
        wide.to_csv(tmp, index=False)
    with atomic_path(out_prefix.with_name(out_prefix.name + ".paper.csv")) as tmp:
        pd.concat(paper_rows, ignore_index=True).to_csv(tmp, index=False)
    with atomic_path(out_prefix.with_suffix(".md")) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    with atomic_path(out_prefix.with_suffix(".tex")) as tmp:
        tmp.write_text("\n".join(tex))
    return wide


# ----------------------------------------------------------------------------- cost (lqrppg bench)

#: The paper's cost columns (RhythmMamba Table 5): thop-style counts, as the authors measured,
#: then this project's extra columns. (column in the bench CSV, header, digits)
COST_COLUMNS = [
    ("thop_params_m", "Params (M)", 3), ("thop_macs_m", "MACs (M)", 2), ("throughput_kfps", "Throughput (Kfps)", 3),
    ("peak_memory_mb", "Peak memory (MiB)", 1), ("params_m", "Params, true (M)", 3),
    ("flop_macs_m", "MACs, FLOP counter (M)", 2),
]
COST_QUOTED = {"params_m": "Params (M)", "macs_m": "MACs (M)", "kfps": "Throughput (Kfps)",
               "peak_mem_m": "Peak memory (M)"}


def write_cost_paper_tables(bench_csvs: Sequence[Path] | Path, out_prefix: Path) -> pd.DataFrame:
    """cost.{csv,paper.csv,md,tex} from the CSVs `lqrppg bench` wrote (one block per device, e.g. the
    CPU run and a CUDA run), with the paper's rows quoted apart.

    Ours: one row per (model, setting) with the paper's columns (thop-style counts, per frame),
    then true parameters and FLOP-counter MACs; the LQ-rPPG / RhythmMamba ratios of the same run.
    Quoted: RhythmMamba's Table 5 and the abstract's claims, in their own block.
    """
    paths = [bench_csvs] if isinstance(bench_csvs, (str, Path)) else list(bench_csvs)
    required = {"row_type", "method", "setting", "device", *(c for c, _, _ in COST_COLUMNS)}
    bench = _read_tables(paths, required, "cost benchmark")
    if empty := [p for p in map(str, paths) if not (bench[bench["source"] == p]["row_type"] == "model").any()]:
        raise DataError(f"{empty[0]}: no measured model rows")
    models = bench[bench["row_type"] == "model"]
    blocks: list[tuple[str, pd.DataFrame]] = []
    for (device, source), part in models.groupby(["device", "source"], sort=False):
        rows = []
        for r in part.itertuples(index=False):
            row = {"Method": r.method,
                   "Setting (T×H×W)": f"{int(r.frames)}×{int(r.height)}×{int(r.width)} ({r.setting})"}
            row.update({header: _cell(float(getattr(r, col)), np.nan, d) for col, header, d in COST_COLUMNS})
            row["source"] = source
            rows.append(row)
        blocks.append((f"This run, {device} (per frame, batch 1)", pd.DataFrame(rows)))
    ratios = bench[bench["row_type"].isin(["ratio", "quoted"])]
    # the paper's claims once, after the measured ratios of every file
    ratios = pd.concat([ratios[ratios["row_type"] == "ratio"],
                        ratios[ratios["row_type"] == "quoted"].drop_duplicates("method")])
    if not ratios.empty:
        rows = []
        for r in ratios.itertuples(index=False):
            row = {"Method": r.method, "Setting (T×H×W)": str(r.setting)}
            if r.row_type != "quoted":
                row["Setting (T×H×W)"] += f", {r.device}"
            for col, header, _ in COST_COLUMNS:
                value = getattr(r, col)
                change = (float(value) - 1) * 100 if not pd.isna(value) else 0.0
                row[header] = "–" if pd.isna(value) else f"×{float(value):.3f} ({'+' if change >= 0 else '−'}{abs(change):.0f}%)"
            row["source"] = published.COST_SOURCE if r.row_type == "quoted" else r.source
            rows.append(row)
        blocks.append(("Ratios, same run (quoted claims marked)", pd.DataFrame(rows)))
    quoted = pd.DataFrame([
        {"Method": m, **{COST_QUOTED[k]: _cell(np.nan if v is None else v, np.nan, 2) for k, v in values.items()},
         "source": published.COST_SOURCE}
        for m, values in published.COST.items()
    ])
    blocks.append((f"Published ({published.COST_SOURCE}; not computed here)", quoted))

    title = "Cost per frame: parameters, MACs, throughput and peak memory"
    lines = [f"# {title}", "",
             "Params and MACs as thop reports them (the authors' method: Mamba kernels and bare parameters "
             "unseen), then the true trainable parameters and the PyTorch FLOP counter's MACs.", ""]
    tex = [f"% {title}: generated by `lqrppg tables cost` from {', '.join(map(str, paths))}; quoted rows are marked", ""]
    for label, table in blocks:
        lines += [f"## {label}", "", *_markdown_grid(table), ""]
        cells = [c for c in table.columns if c not in ("Method", "source")]
        tex_table = table.rename(columns={c: f"{label} | {c}" for c in cells})
        tex.append(latex_tabular(tex_table, label))
    with atomic_path(out_prefix.with_suffix(".csv")) as tmp:
        bench.to_csv(tmp, index=False)
    with atomic_path(out_prefix.with_name(out_prefix.name + ".paper.csv")) as tmp:
        pd.concat([t.assign(block=label) for label, t in blocks], ignore_index=True).to_csv(tmp, index=False)
    with atomic_path(out_prefix.with_suffix(".md")) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    with atomic_path(out_prefix.with_suffix(".tex")) as tmp:
        tmp.write_text("\n".join(tex))
    return bench
