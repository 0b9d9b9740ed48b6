"""The ``lqrppg`` command line: one subcommand per pipeline stage.

Each subcommand reads files and writes files (atomically), so it runs the same by hand
as under Snakemake. Paths default to the locations the config implies, so
``lqrppg preprocess --config config/config.yaml --dataset synth-calm`` is enough by hand.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from lqrppg.errors import LqrppgError

log = logging.getLogger("lqrppg")

Handler = Callable[[argparse.Namespace], None]


def _load(args: argparse.Namespace):
    from lqrppg.config import load_config

    return load_config(args.config)


# ----------------------------------------------------------------------------------- commands
def cmd_config_schema(args: argparse.Namespace) -> None:
    from lqrppg.config import json_schema
    from lqrppg.io import write_text

    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.out:
        write_text(args.out, text)
    else:
        sys.stdout.write(text)


def cmd_config_show(args: argparse.Namespace) -> None:
    cfg = _load(args)
    sys.stdout.write(json.dumps(cfg.model_dump(mode="json"), indent=2) + "\n")
    log.info("config hash %s; preprocessing id %s", cfg.config_hash(), cfg.preprocess.prep_id())


def cmd_init_tracking(args: argparse.Namespace) -> None:
    from lqrppg.io import write_text
    from lqrppg.tracking import init_tracking

    cfg = _load(args)
    init_tracking(cfg.mlflow.tracking_uri)
    if args.out:
        write_text(args.out, json.dumps({"tracking_uri": cfg.mlflow.tracking_uri}) + "\n")


def cmd_synth(args: argparse.Namespace) -> None:
    from lqrppg.errors import ConfigError
    from lqrppg.synth import synthesize_dataset

    cfg = _load(args)
    if args.dataset not in cfg.synthetic:
        raise ConfigError(f"{args.dataset!r} is not a synthetic dataset; synthetic: {sorted(cfg.synthetic)}")
    ds = cfg.dataset(args.dataset)
    # Each dataset gets its own seed stream, stable under adding or removing other datasets.
    seed = _derived_seed(cfg.seed, args.dataset)
    synthesize_dataset(cfg.synthetic[args.dataset], ds.root, ds.truth, seed=seed)
    if args.stamp:
        from lqrppg.io import write_text

        spec = {"seed": cfg.seed, "dataset": args.dataset, "spec": cfg.synthetic[args.dataset].model_dump(mode="json")}
        write_text(Path(args.stamp), json.dumps(spec, sort_keys=True) + "\n")


def _derived_seed(seed: int, name: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:4], "little")


def cmd_acquire(args: argparse.Namespace) -> None:
    from lqrppg.acquire import acquire, open_reader

    cfg = _load(args)
    ds = cfg.dataset(args.dataset)
    reader = open_reader(ds.reader, ds.root, ds.fps, ds.options)
    if args.dataset in cfg.synthetic:
        # A synthetic dataset borrows the real layout, not the real release: no count, no known defects.
        reader.expected_sessions, reader.known_issues = None, {}
    acquire(
        reader,
        Path(args.out or cfg.manifest_path(args.dataset)),
        dataset=args.dataset,
        download=ds.download,
        report_path=Path(args.report) if args.report else None,
        workers=args.workers,
        decode_all=args.decode_all,
    )


def cmd_preprocess(args: argparse.Namespace) -> None:
    from lqrppg.acquire import open_reader, sessions_from_manifest
    from lqrppg.preprocess.pipeline import preprocess_dataset

    cfg = _load(args)
    ds = cfg.dataset(args.dataset)
    reader = open_reader(ds.reader, ds.root, ds.fps, ds.options)
    sessions = sessions_from_manifest(Path(args.manifest or cfg.manifest_path(args.dataset)))
    out = Path(args.out or cfg.store_path(args.dataset))
    preprocess_dataset(reader, sessions, cfg.preprocess_for(args.dataset), out, workers=args.workers or cfg.workers)


def cmd_unsupervised(args: argparse.Namespace) -> None:
    from lqrppg.errors import ConfigError
    from lqrppg.preprocess.store import ChunkStore
    from lqrppg.score import metrics_long, mlflow_metrics, score_store, write_results
    from lqrppg.tracking import git_sha, log_run
    from lqrppg.unsupervised import get_method

    cfg = _load(args)
    ds = cfg.dataset(args.dataset)
    methods = {name: get_method(name) for name in args.method}  # unknown names fail before any work
    if args.out and len(methods) > 1:
        raise ConfigError("--out names one metrics file: give one --method, or --out-dir for several")
    store = ChunkStore(Path(args.store or cfg.store_path(args.dataset)))
    traces: dict[str, object] = {}  # each session's mean-RGB trace is read once for all methods

    def trace(session: str):
        if session not in traces:
            traces[session] = store.mean_rgb(session).astype("float64")
        return traces[session]

    out_root = Path(args.out_dir) if args.out_dir else cfg.results_dir / "metrics" / "unsupervised"
    for name, method in methods.items():
        per_video = score_store(store, lambda s, method=method: method(trace(s), store.fps), cfg.evaluation, ds.truth)
        per_video.insert(0, "method", name)
        metrics = metrics_long(per_video, cfg.evaluation, {"method": name, "dataset": args.dataset})
        out_csv = Path(args.out) if args.out else out_root / name / f"{args.dataset}.csv"
        out_pv = out_csv.with_name(f"{out_csv.stem}.per_video.parquet")
        tags = {"method": name, "dataset": args.dataset, "protocol": "unsupervised",
                "git_sha": git_sha(), "config_hash": cfg.config_hash(), "prep_id": store.prep_id}
        write_results(per_video, metrics, out_csv, out_pv, cfg.evaluation, store.fps, tags)
        log_run(
            cfg.mlflow.tracking_uri,
            experiment=f"{cfg.mlflow.experiment_prefix}/unsupervised",
            run_name=f"{name}/{args.dataset}",
            params={"method": name, "dataset": args.dataset, "evaluation": cfg.evaluation.model_dump(mode="json"),
                    "preprocess": cfg.preprocess_for(args.dataset).model_dump(mode="json"),
                    "n_videos": len(store.sessions)},
            metrics=mlflow_metrics(metrics),
            tags=tags,
            artifacts=[out_pv, out_csv],
            artifact_root=cfg.results_dir / "mlartifacts",
        )
        for row in metrics[metrics["metric"] == "MAE"].itertuples():
            log.info("%s on %s: MAE %.2f ± %.2f bpm vs %s (n=%d)", name, args.dataset, row.value, row.se,
                     row.reference, row.n)


def cmd_bench(args: argparse.Namespace) -> None:
    import math

    from lqrppg.bench import run_cost_benchmark, write_cost_tables
    from lqrppg.predict import resolve_device
    from lqrppg.tracking import git_sha, log_run

    cfg = _load(args)
    changes = {k: v for k, v in {"device": args.device, "models": args.models, "warmup": args.warmup,
                                 "passes": args.passes, "published": args.published}.items() if v is not None}
    settings = cfg.bench.model_copy(update=changes)
    device = str(resolve_device(settings.device))  # 'auto': CUDA when present
    threads = _torch_threads(args.threads or settings.threads)
    default = (cfg.preprocess.chunk_length, cfg.preprocess.size, cfg.preprocess.size)
    df = run_cost_benchmark(default_setting=default, **{**settings.model_dump(), "device": device, "threads": threads})
    out_dir = Path(args.out_dir or cfg.results_dir / "bench")
    meta = {"config_hash": cfg.config_hash(), "git_sha": git_sha(), "default_setting": "x".join(map(str, default))}
    csv_path, md_path = write_cost_tables(df, out_dir, meta)
    models = df[df["row_type"] == "model"]
    metrics = {f"{r.model}.{r.setting}.{key}": float(getattr(r, key)) for r in models.itertuples()
               for key in ("params_m", "thop_params_m", "thop_macs_m", "flop_macs_m", "throughput_kfps",
                           "peak_memory_mb") if math.isfinite(getattr(r, key))}
    log_run(cfg.mlflow.tracking_uri, experiment=f"{cfg.mlflow.experiment_prefix}/cost", run_name=f"bench/{device}",
            params={"bench": settings.model_dump(mode="json"), "device": df.attrs.get("device"),
                    "default_setting": meta["default_setting"], "torch": df.attrs.get("torch")},
            metrics=metrics, tags={"protocol": "cost", **{k: str(v) for k, v in meta.items()}},
            artifacts=[csv_path, md_path], artifact_root=cfg.results_dir / "mlartifacts")
    for r in df[df["row_type"] == "ratio"].itertuples():
        log.info("%s at %s: MACs x%.3f, throughput x%.2f", r.method, r.setting, r.thop_macs_m, r.throughput_kfps)


def cmd_tables(args: argparse.Namespace) -> None:
    from lqrppg.tables import write_table

    if args.kind == "cost":
        from lqrppg.tables import write_cost_paper_tables

        write_cost_paper_tables([Path(p) for p in args.metrics], Path(args.out_prefix))
        return
    write_table(args.kind, [Path(p) for p in args.metrics], Path(args.out_prefix),
                [Path(p) for p in args.unsupervised or []], groups=args.groups or ())


def cmd_figures(args: argparse.Namespace) -> None:
    from lqrppg.figures import ablation_curves, bland_altman

    if args.kind == "ablation":
        if not args.config or not args.table:
            raise LqrppgError("figures ablation needs --config (the ablation groups) and --table (ablation.csv)")
        ablation_curves(Path(args.table), _load(args).ablations, Path(args.out), metric=args.metric)
    else:
        if not args.per_video:
            raise LqrppgError("figures bland-altman needs --per-video (the per-video Parquet of an evaluation)")
        bland_altman([Path(p) for p in args.per_video], Path(args.out), title=args.title or "")


def _torch_threads(requested: int | None) -> int | None:
    """Clamp a thread request to the machine: Snakemake's --cores may exceed the real cores,
    and an oversubscribed torch thread pool spins and runs many times slower."""
    if requested is None:
        return None
    import torch

    n = max(1, min(requested, os.cpu_count() or 1))
    torch.set_num_threads(n)
    return n


def _store(cfg, dataset: str, path: str | None = None):
    from lqrppg.preprocess.store import ChunkStore

    return ChunkStore(Path(path or cfg.store_path(dataset)))


def cmd_split(args: argparse.Namespace) -> None:
    from lqrppg.splits import cross_source, intra_fold, published_split, write_split

    cfg = _load(args)
    store = _store(cfg, args.dataset, args.store)
    if args.protocol == "intra":
        if args.fold is None:
            raise LqrppgError("--fold is required for the intra protocol")
        p = cfg.protocols.intra
        split = intra_fold(store.sessions, store.index, p.folds, args.fold, p.val_fraction, cfg.seed)
        fold = f"fold{args.fold}"
    elif args.protocol == "published":
        if args.dataset not in cfg.protocols.published:
            raise LqrppgError(f"protocols.published has no split for dataset {args.dataset!r}")
        spec = cfg.protocols.published[args.dataset]
        split = published_split(store.sessions, store.index, spec.train, spec.val, spec.test)
        fold = "split"
    else:
        split = cross_source(store.sessions, store.index, cfg.protocols.train_fraction)
        fold = args.name or "source"
    write_split(Path(args.out), split, protocol=args.protocol, dataset=args.dataset, fold=fold,
                seed=cfg.seed, prep_id=store.prep_id)
    log.info("%s %s %s: train %d, val %d, test %d subjects", args.dataset, args.protocol, fold,
             len(split["train"]["subjects"]), len(split["val"]["subjects"]), len(split["test"]["subjects"]))


def cmd_quantize_fit(args: argparse.Namespace) -> None:
    from lqrppg.io import write_text
    from lqrppg.lq.fit import fit_quantizers, read_quantizer_info, save_codebooks, save_quantizers
    from lqrppg.lq.labels import labels_from_store
    from lqrppg.splits import read_split

    cfg = _load(args)
    _torch_threads(args.threads)
    store = _store(cfg, args.dataset, args.store)
    split = read_split(Path(args.split))
    band = cfg.evaluation.band_hz
    quality = store.index.set_index(["session", "chunk"])["label_quality"]

    def good_labels(sessions):
        """y_bpf of the chunks whose label is good enough to learn codebooks from (training.min_label_quality)."""
        ids, y = labels_from_store(store, sessions, band, cfg.evaluation.filter_order)
        keep = quality.loc[list(zip(ids["session"], ids["chunk"], strict=True))].to_numpy()
        return y[keep >= cfg.training.min_label_quality]

    y_train, y_val = good_labels(split["train"]["sessions"]), good_labels(split["val"]["sessions"])
    settings = cfg.lq_settings(args.codebook) if args.codebook else cfg.lq
    result = fit_quantizers(y_train, y_val, store.fps, settings, cfg.lq_selection_chain(), seed=cfg.seed)
    out = Path(args.out_dir)
    save_quantizers(result, out / "quantizers.pt")
    save_codebooks(result, out / "codebooks.json")
    info = {**read_quantizer_info(out / "quantizers.pt"), "split": str(args.split), "dataset": args.dataset,
            "selection": "validation HR MAE (Welch) of q vs the band-passed label, epochs >= lq.min_epoch"}
    write_text(out / "fit.json", json.dumps(info, indent=2, default=str) + "\n")


def cmd_quantize_apply(args: argparse.Namespace) -> None:
    from lqrppg.lq.fit import load_quantizers
    from lqrppg.lq.labels import labels_from_store
    from lqrppg.lq.pseudo_labels import apply_quantizers, write_pseudo_labels
    from lqrppg.splits import read_split

    cfg = _load(args)
    store = _store(cfg, args.dataset, args.store)
    split = read_split(Path(args.split))
    # Pseudo labels are needed for the training and validation sessions only; test labels never
    # pass through the quantizers.
    sessions = split["train"]["sessions"] + split["val"]["sessions"]
    ids, y_bpf = labels_from_store(store, sessions, cfg.evaluation.band_hz, cfg.evaluation.filter_order)
    quantizers = load_quantizers(Path(args.quantizers))
    q, k = apply_quantizers(quantizers, y_bpf)
    meta = {"quantizers": str(args.quantizers), "dataset": args.dataset, "split": str(args.split),
            "prep_id": store.prep_id, "codebooks": [qz.codebook.tolist() for qz in quantizers]}
    write_pseudo_labels(Path(args.out), ids, y_bpf, q, k, meta)


def _tracking(cfg, experiment: str, run_name: str, tags: dict, params: dict) -> dict:
    from lqrppg.tracking import git_sha

    return {"uri": cfg.mlflow.tracking_uri, "experiment": f"{cfg.mlflow.experiment_prefix}/{experiment}",
            "run_name": run_name, "artifact_root": cfg.results_dir / "mlartifacts",
            "tags": {**tags, "git_sha": git_sha(), "config_hash": cfg.config_hash()}, "params": params}


def cmd_train(args: argparse.Namespace) -> None:
    from lqrppg.splits import read_split
    from lqrppg.train import train

    cfg = _load(args)
    model = cfg.registry_model(args.model)  # the entry's registry model; ConfigError when not configured
    store = _store(cfg, args.dataset, args.store)
    split = read_split(Path(args.split))
    settings = cfg.train_settings(args.model, args.dataset, split["protocol"], split["fold"])
    if args.threads:
        settings = settings.model_copy(update={"threads": _torch_threads(args.threads)})
    run_name = f"{args.model}/{args.dataset}/{split['protocol']}/{split['fold']}"
    tags = {"model": args.model, "registry_model": model, "train_dataset": args.dataset, "protocol": split["protocol"],
            "fold": split["fold"], "prep_id": store.prep_id, "data_version": store.prep_id}
    options = cfg.models[args.model].options
    lq = cfg.lq_settings(cfg.codebook_kind(args.model))
    params = {"model": args.model, "registry_model": model, "options": options,
              "training": settings.model_dump(mode="json"), "lq": lq.model_dump(mode="json"),
              "preprocess": cfg.preprocess_for(args.dataset).model_dump(mode="json"), "split": split,
              "seed": cfg.seed}
    train(
        model, store, split["train"]["sessions"], split["val"]["sessions"], settings, Path(args.out_dir),
        seed=cfg.seed, chain=cfg.evaluation, model_options=options,
        pseudo_labels=Path(args.pseudo_labels) if args.pseudo_labels else None,
        codebooks=Path(args.codebooks) if args.codebooks else None,
        tracking=_tracking(cfg, split["protocol"], run_name, tags, params),
        run_info={"run_name": run_name, "split_file": str(args.split), "config_hash": cfg.config_hash(), **tags},
    )


def cmd_predict(args: argparse.Namespace) -> None:
    from lqrppg.predict import predict_store, write_predictions
    from lqrppg.splits import read_split
    from lqrppg.predict import resolve_device
    from lqrppg.train import load_checkpoint

    cfg = _load(args)
    _torch_threads(args.threads or cfg.training.threads)
    store = _store(cfg, args.dataset, args.store)
    model, checkpoint = load_checkpoint(Path(args.checkpoint), expected_config={"prep_id": store.prep_id})
    if args.split:
        sessions = read_split(Path(args.split))["test"]["sessions"]
    else:  # cross-dataset target: every session
        sessions = store.sessions["session"].astype(str).tolist()
    device = resolve_device(cfg.training.device)
    frame, provenance = predict_store(model, checkpoint, store, sessions, cfg.training.eval_batch_size, device)
    meta = {**provenance, "checkpoint": str(args.checkpoint), "test_dataset": args.dataset,
            "selected_epoch": checkpoint["selected_epoch"], "criterion": checkpoint["criterion"],
            "run_info": checkpoint["run_info"]}
    write_predictions(frame, Path(args.out), meta)


def cmd_evaluate(args: argparse.Namespace) -> None:
    """Score predictions (several folds are pooled: each video is tested exactly once)."""
    import pandas as pd

    from lqrppg.evaluation import per_video_table
    from lqrppg.predict import predictions_to_signals, read_predictions
    from lqrppg.score import load_truth, metrics_long, mlflow_metrics, write_results
    from lqrppg.tracking import git_sha, log_run

    cfg = _load(args)
    ds = cfg.dataset(args.dataset)
    signals, fold_of, provenance = {}, {}, []
    for path in args.predictions:
        frame, meta = read_predictions(Path(path))
        for session, (pred, label) in predictions_to_signals(frame).items():
            if session in signals:
                raise LqrppgError(f"session {session} is predicted twice (again in {path}); folds must not overlap")
            refs = {"label": label.astype("float64")}
            if ds.truth is not None:
                refs["true"] = load_truth(ds.truth, session, len(label))
            signals[session] = (pred.astype("float64"), refs)
            fold_of[session] = meta.get("run_info", {}).get("fold", "")
        provenance.append({"predictions": str(path), "checkpoint": meta.get("checkpoint"),
                           "selected_epoch": meta.get("selected_epoch"), "criterion": meta.get("criterion")})
    per_video = per_video_table(signals, _store(cfg, args.dataset).fps, cfg.evaluation)
    per_video.insert(1, "fold", per_video["session"].map(fold_of))
    identity = {"model": args.model, "train": args.train_dataset, "test": args.dataset, "protocol": args.protocol}
    for key, value in reversed(identity.items()):
        per_video.insert(0, key, value)
    metrics = metrics_long(per_video, cfg.evaluation, identity)
    out_csv = Path(args.out)
    out_pv = out_csv.with_name(f"{out_csv.stem}.per_video.parquet")
    tags = {**identity, "git_sha": git_sha(), "config_hash": cfg.config_hash()}
    record = write_results(per_video, metrics, out_csv, out_pv, cfg.evaluation, _store(cfg, args.dataset).fps,
                           {**tags, "runs": json.dumps(provenance)})
    log_run(cfg.mlflow.tracking_uri, f"{cfg.mlflow.experiment_prefix}/{args.protocol}-evaluation",
            run_name=f"{args.model}/{args.train_dataset}->{args.dataset}", params=record,
            metrics=mlflow_metrics(metrics), tags=tags, artifacts=[out_pv, out_csv],
            artifact_root=cfg.results_dir / "mlartifacts")
    mae = metrics[metrics["metric"] == "MAE"].set_index("reference")["value"]
    log.info("%s %s %s->%s: MAE %s", args.model, args.protocol, args.train_dataset, args.dataset,
             pd.Series(mae).round(2).to_dict())


# ------------------------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lqrppg", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help_text: str, config: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        if config:
            p.add_argument("--config", action="append", required=True, metavar="YAML",
                           help="config file; repeat to overlay (later files win)")
        p.set_defaults(handler=handler)
        return p

    p = sub.add_parser("config", help="print the config JSON schema or the validated config")
    config_sub = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    s = config_sub.add_parser("schema", help="write the JSON schema generated from the typed config")
    s.add_argument("--out", help="file to write (default: stdout)")
    s.set_defaults(handler=cmd_config_schema)
    s = config_sub.add_parser("show", help="validate config files and print the merged result")
    s.add_argument("--config", action="append", required=True, metavar="YAML")
    s.set_defaults(handler=cmd_config_show)

    p = add("init-tracking", cmd_init_tracking, "create the MLflow tracking store once, before parallel jobs")
    p.add_argument("--out", help="marker file to write when the store is ready")

    p = add("synth", cmd_synth, "generate a synthetic dataset in a real dataset's layout (+ true pulse)")
    p.add_argument("--dataset", required=True, help="name under 'synthetic' in the config")
    p.add_argument("--stamp", help="also write the spec used here once the dataset is complete (a workflow stamp)")

    p = add("acquire", cmd_acquire,
            "download (if configured), verify a dataset folder and write its manifest (files, sizes, hashes)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", help="manifest path (default: results/raw/<dataset>/manifest.parquet)")
    p.add_argument("--report", help="verification report (default: verification.json beside the manifest)")
    p.add_argument("--workers", type=int, help="threads hashing and checking sessions (default: up to 4)")
    p.add_argument("--decode-all", action="store_true",
                   help="decode every frame of every video (slow); default: first and last frame only")

    p = add("preprocess", cmd_preprocess, "detect and crop faces, align labels, write the chunk store")
    p.add_argument("--dataset", required=True)
    p.add_argument("--manifest", help="manifest from 'acquire' (default: the config's path)")
    p.add_argument("--out", help="store folder (default: results/processed/<dataset>/<prep_id>)")
    p.add_argument("--workers", type=int, help="session worker processes (default: config 'workers')")

    p = add("unsupervised", cmd_unsupervised, "run unsupervised methods on a store and score them")
    p.add_argument("--dataset", required=True)
    p.add_argument("--method", required=True, nargs="+", help="names in the unsupervised method registry")
    p.add_argument("--store", help="chunk store (default: the config's path)")
    p.add_argument("--out-dir", help="writes <out-dir>/<method>/<dataset>.csv (default: results/metrics/unsupervised)")
    p.add_argument("--out", help="one method only: its metrics CSV (per-video Parquet is written beside it)")

    p = add("split", cmd_split, "write a subject-disjoint train/val/test split (explicit subject lists)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--protocol", required=True, choices=["intra", "published", "cross"])
    p.add_argument("--fold", type=int, help="fold index (intra)")
    p.add_argument("--name", help="cross: the model folder, 'source' or 'source-<variant>' (default: source)")
    p.add_argument("--store", help="chunk store (default: the config's path)")
    p.add_argument("--out", required=True, help="split JSON to write")

    p = sub.add_parser("quantize", help="label quantization (LQ): fit the quantizers, apply them")
    q_sub = p.add_subparsers(dest="quantize_command", required=True, metavar="ACTION")
    q = q_sub.add_parser("fit", help="fit the 1..5-bit quantizers on a training split (epoch chosen on validation)")
    q.add_argument("--config", action="append", required=True, metavar="YAML")
    q.add_argument("--dataset", required=True)
    q.add_argument("--split", required=True, help="split JSON from 'lqrppg split'")
    q.add_argument("--store", help="chunk store (default: the config's path)")
    q.add_argument("--out-dir", required=True, help="folder for quantizers.pt, codebooks.json, fit.json")
    q.add_argument("--threads", type=int, help="torch CPU threads (clamped to the machine's cores)")
    q.add_argument("--codebook", choices=["learned", "uniform", "kmeans"],
                   help="codebook kind (default: the config's lq.codebook); uniform/kmeans are the ablations")
    q.set_defaults(handler=cmd_quantize_fit)
    q = q_sub.add_parser("apply", help="quantize the train/val labels into pseudo_labels.parquet (eval mode)")
    q.add_argument("--config", action="append", required=True, metavar="YAML")
    q.add_argument("--dataset", required=True)
    q.add_argument("--split", required=True)
    q.add_argument("--quantizers", required=True, help="quantizers.pt from 'quantize fit'")
    q.add_argument("--store", help="chunk store (default: the config's path)")
    q.add_argument("--out", required=True, help="pseudo_labels.parquet to write")
    q.set_defaults(handler=cmd_quantize_apply)

    p = add("train", cmd_train, "train a model on a split's train sessions, select the epoch on validation")
    p.add_argument("--model", required=True, help="name in the model registry (configured under 'models')")
    p.add_argument("--dataset", required=True)
    p.add_argument("--split", required=True)
    p.add_argument("--store", help="chunk store (default: the config's path)")
    p.add_argument("--pseudo-labels", help="pseudo_labels.parquet (models trained on quantized labels)")
    p.add_argument("--codebooks", help="codebooks.json (models trained on quantized labels)")
    p.add_argument("--out-dir", required=True, help="folder for checkpoint.pt, last.pt, run.json")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: training.threads), clamped to the cores")

    p = add("predict", cmd_predict, "run a selected checkpoint on a test set (once, after selection)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--dataset", required=True, help="test dataset")
    p.add_argument("--split", help="intra: the split whose test sessions to predict; omit for a whole target")
    p.add_argument("--store", help="chunk store (default: the config's path)")
    p.add_argument("--out", required=True, help="predictions Parquet")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: training.threads), clamped to the cores")

    p = add("evaluate", cmd_evaluate, "score predictions against label and truth; folds are pooled")
    p.add_argument("--predictions", nargs="+", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--train-dataset", required=True)
    p.add_argument("--dataset", required=True, help="test dataset")
    p.add_argument("--protocol", required=True, choices=["intra", "published", "cross"])
    p.add_argument("--out", required=True, help="metrics CSV (per-video Parquet is written beside it)")

    p = add("bench", cmd_bench, "cost benchmark: parameters (true, thop-style), MACs, throughput, peak memory")
    p.add_argument("--device", help="cpu, cuda or auto (default: the config's bench.device)")
    p.add_argument("--models", nargs="+", help="registry models (default: the config's bench.models, else all)")
    p.add_argument("--warmup", type=int, help="untimed passes per model")
    p.add_argument("--passes", type=int, help="timed passes per model")
    p.add_argument("--published", action=argparse.BooleanOptionalAction, default=None,
                   help="also measure each model at its published input (default: the config's bench.published)")
    p.add_argument("--threads", type=int, help="torch CPU threads (clamped to the machine's cores)")
    p.add_argument("--out-dir", help="where cost.csv and cost.md go (default: results/bench)")

    p = sub.add_parser("tables", help="build paper-style tables from metrics files",
                       description="build paper-style tables from metrics files")
    p.add_argument("kind", choices=["unsupervised", "intra", "cross", "ablation", "cost"])
    p.add_argument("--metrics", nargs="+", required=True,
                   help="metrics CSV files written by evaluation rules (cost: the CSV written by 'lqrppg bench')")
    p.add_argument("--groups", nargs="*", help="ablation: the group of each metrics file, in the same order")
    p.add_argument("--unsupervised", nargs="*", help="unsupervised metrics CSVs to list beside trained models")
    p.add_argument("--out-prefix", required=True, help="output path without suffix (.md and .csv are written)")
    p.set_defaults(handler=cmd_tables)

    p = sub.add_parser("figures", help="draw paper-style figures from table and results files",
                       description="draw paper-style figures (.png, .pdf, and the plotted points as .csv)")
    p.add_argument("kind", choices=["ablation", "bland-altman"])
    p.add_argument("--config", action="append", metavar="YAML", help="ablation: the config with the ablation groups")
    p.add_argument("--table", help="ablation: the ablation table CSV written by 'lqrppg tables ablation'")
    p.add_argument("--metric", default="MAE", choices=["MAE", "RMSE", "MAPE", "Pearson", "SNR", "MACC"],
                   help="ablation: the metric on the y axis")
    p.add_argument("--per-video", nargs="+", help="bland-altman: per-video Parquet files written by 'lqrppg evaluate'")
    p.add_argument("--title", help="bland-altman: figure title")
    p.add_argument("--out", required=True,
                   help="ablation: output folder (ablation-<group>.*); bland-altman: output path without suffix")
    p.set_defaults(handler=cmd_figures)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        args.handler(args)
    except LqrppgError as err:
        log.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
