"""The ``lqrppg`` command line: one subcommand per pipeline stage.

Each subcommand reads files and writes files (atomically), so it runs the same by hand
as under Snakemake. Paths default to the locations the config implies, so
``lqrppg preprocess --config config/config.yaml --dataset synth-calm`` is enough by hand.
"""

from __future__ import annotations

import argparse
import json
import logging
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


def _derived_seed(seed: int, name: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:4], "little")


def cmd_acquire(args: argparse.Namespace) -> None:
    from lqrppg.acquire import build_manifest, open_reader, write_manifest

    cfg = _load(args)
    ds = cfg.dataset(args.dataset)
    reader = open_reader(ds.reader, ds.root, ds.fps)
    manifest = build_manifest(reader)
    manifest.insert(0, "dataset_name", args.dataset)
    write_manifest(manifest, Path(args.out or cfg.manifest_path(args.dataset)))


def cmd_preprocess(args: argparse.Namespace) -> None:
    from lqrppg.acquire import open_reader, sessions_from_manifest
    from lqrppg.preprocess.pipeline import preprocess_dataset

    cfg = _load(args)
    ds = cfg.dataset(args.dataset)
    reader = open_reader(ds.reader, ds.root, ds.fps)
    sessions = sessions_from_manifest(Path(args.manifest or cfg.manifest_path(args.dataset)))
    out = Path(args.out or cfg.store_path(args.dataset))
    preprocess_dataset(reader, sessions, cfg.preprocess, out, workers=args.workers or cfg.workers)


def cmd_unsupervised(args: argparse.Namespace) -> None:
    from lqrppg.preprocess.store import ChunkStore
    from lqrppg.score import metrics_long, mlflow_metrics, score_store, write_results
    from lqrppg.tracking import git_sha, log_run
    from lqrppg.unsupervised import get_method

    cfg = _load(args)
    ds = cfg.dataset(args.dataset)
    method = get_method(args.method)
    store = ChunkStore(Path(args.store or cfg.store_path(args.dataset)))
    per_video = score_store(store, lambda s: method(store.mean_rgb(s).astype("float64"), store.fps),
                            cfg.evaluation, ds.truth)
    per_video.insert(0, "method", args.method)
    identity = {"method": args.method, "dataset": args.dataset}
    metrics = metrics_long(per_video, cfg.evaluation, identity)
    out_dir = cfg.results_dir / "metrics" / "unsupervised" / args.method
    out_csv = Path(args.out or out_dir / f"{args.dataset}.csv")
    out_pv = out_csv.with_name(f"{out_csv.stem}.per_video.parquet")
    tags = {
        "method": args.method, "dataset": args.dataset, "protocol": "unsupervised",
        "git_sha": git_sha(), "config_hash": cfg.config_hash(), "prep_id": store.prep_id,
    }
    write_results(per_video, metrics, out_csv, out_pv, cfg.evaluation, store.fps, tags)
    log_run(
        cfg.mlflow.tracking_uri,
        experiment=f"{cfg.mlflow.experiment_prefix}/unsupervised",
        run_name=f"{args.method}/{args.dataset}",
        params={"method": args.method, "dataset": args.dataset, "evaluation": cfg.evaluation.model_dump(mode="json"),
                "preprocess": cfg.preprocess.model_dump(mode="json"), "n_videos": len(store.sessions)},
        metrics=mlflow_metrics(metrics),
        tags=tags,
        artifacts=[out_pv, out_csv],
        artifact_root=cfg.results_dir / "mlartifacts",
    )
    for row in metrics[metrics["metric"] == "MAE"].itertuples():
        log.info("%s on %s: MAE %.2f ± %.2f bpm vs %s (n=%d)", args.method, args.dataset, row.value, row.se,
                 row.reference, row.n)


def cmd_tables(args: argparse.Namespace) -> None:
    from lqrppg.tables import write_table

    titles = {"unsupervised": "Unsupervised methods: whole-video heart rate"}
    keys = {"unsupervised": ["dataset", "method"]}
    write_table([Path(p) for p in args.metrics], keys[args.kind], Path(args.out_prefix), titles[args.kind])


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

    p = add("acquire", cmd_acquire, "verify a dataset folder and write its manifest (files, sizes, hashes)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", help="manifest path (default: results/raw/<dataset>/manifest.parquet)")

    p = add("preprocess", cmd_preprocess, "detect and crop faces, align labels, write the chunk store")
    p.add_argument("--dataset", required=True)
    p.add_argument("--manifest", help="manifest from 'acquire' (default: the config's path)")
    p.add_argument("--out", help="store folder (default: results/processed/<dataset>/<prep_id>)")
    p.add_argument("--workers", type=int, help="session worker processes (default: config 'workers')")

    p = add("unsupervised", cmd_unsupervised, "run an unsupervised method on a store and score it")
    p.add_argument("--dataset", required=True)
    p.add_argument("--method", required=True, help="name in the unsupervised method registry")
    p.add_argument("--store", help="chunk store (default: the config's path)")
    p.add_argument("--out", help="metrics CSV (per-video Parquet is written beside it)")

    p = sub.add_parser("tables", help="build paper-style tables from metrics files",
                       description="build paper-style tables from metrics files")
    p.add_argument("kind", choices=["unsupervised"])
    p.add_argument("--metrics", nargs="+", required=True, help="metrics CSV files written by evaluation rules")
    p.add_argument("--out-prefix", required=True, help="output path without suffix (.md and .csv are written)")
    p.set_defaults(handler=cmd_tables)
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
