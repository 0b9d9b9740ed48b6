"""The project configuration: one typed model, validated once at the edge.

Each stage owns its own settings model (``SynthDatasetSpec`` in :mod:`lqrppg.synth`,
``PreprocessSettings`` in :mod:`lqrppg.preprocess`, ``ChainSettings`` in
:mod:`lqrppg.signal`); this module composes them into :class:`ProjectConfig`.
The JSON schema in ``workflow/schemas/config.schema.json`` that Snakemake validates
``config/config.yaml`` against is generated from this model (``lqrppg config schema``)
and a test checks the committed copy is current, so there is one source of truth.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lqrppg.bench import BenchSettings
from lqrppg.errors import ConfigError
from lqrppg.lq.fit import LQSettings
from lqrppg.preprocess.pipeline import PreprocessSettings
from lqrppg.signal.chain import ChainSettings
from lqrppg.synth.spec import SynthDatasetSpec
from lqrppg.train import TrainSettings

SCHEMA_PATH = Path("workflow/schemas/config.schema.json")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DownloadSpec(_Strict):
    """Where acquisition may fetch a dataset whose licence allows it (most need a manual drop)."""

    url: str = Field(description="HTTP(S) URL of the archive or file; the download resumes after an interruption.")
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$", description="SHA-256 of the downloaded file; checked before use.")
    filename: str | None = Field(default=None, description="Name to save it under (default: the URL's last part).")
    extract: bool = Field(default=True, description="Unpack a .zip/.tar(.gz) archive into the dataset root.")


class DatasetConfig(_Strict):
    """A real dataset on disk (the synthetic ones are declared under ``synthetic``)."""

    reader: str = Field(description="Reader name in the dataset registry (e.g. 'ubfc-rppg', 'pure').")
    root: Path = Field(description="Folder holding the dataset in its original layout.")
    fps: float | None = Field(
        default=None, gt=0, description="Video frame rate; defaults to the reader's (container rate is checked)."
    )
    truth: Path | None = Field(
        default=None, description="Optional folder of per-session true-pulse Parquet files (synthetic data)."
    )
    download: DownloadSpec | None = Field(
        default=None, description="Fetch the data here before acquisition (only where the licence allows)."
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Reader-specific settings (exclusion lists, condition filters, quality masks); "
        "each reader documents its own and unknown keys are errors.",
    )
    preprocess: dict[str, Any] = Field(
        default_factory=dict,
        description="Changes to the global 'preprocess' settings for this dataset (e.g. chunk_length, "
        "detection, detect_every, detector); keys are PreprocessSettings fields. Models trained on one "
        "dataset and tested on another need the same chunk_length and size on both.",
    )


class UnsupervisedConfig(_Strict):
    methods: list[str] = Field(
        default_factory=lambda: ["POS", "CHROM", "GREEN", "ICA", "LGI", "PBV", "OMIT"],
        description="Unsupervised methods (names in the method registry) evaluated on every dataset.",
    )
    datasets: list[str] | None = Field(
        default=None, description="Datasets to evaluate them on; null means every configured dataset."
    )


class TrainOverrides(_Strict):
    """Per-model changes to the shared ``training`` settings (method.md §5 uses per-setting LRs)."""

    epochs: int | None = Field(default=None, ge=1, description="Epochs for this model.")
    batch_size: int | None = Field(default=None, ge=1, description="Training batch size for this model.")
    lr: float | None = Field(default=None, gt=0, description="Peak (OneCycle max) learning rate for this model.")
    weight_decay: float | None = Field(default=None, ge=0, description="AdamW weight decay for this model.")
    augment: bool | None = Field(default=None, description="RhythmFormer-style augmentation for this model.")


class ModelEntry(TrainOverrides):
    """One supervised model to train: a registry model, its options and training overrides.

    The entry's name (its key under ``models``) names the runs and result folders, so one
    registry model can be trained in several configurations side by side (the ablations).
    """

    model: str | None = Field(default=None, description="Registry model name; default: the entry's own name.")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Constructor options of the model (its Options class; unknown keys are errors), e.g. "
        "LQ-rPPG's ablation switches {bits, hierarchical}.",
    )
    codebook: Literal["learned", "uniform", "kmeans"] | None = Field(
        default=None,
        description="Quantized-label models: the codebooks their pseudo labels come from (default: lq.codebook).",
    )
    main: bool = Field(
        default=True,
        description="Train this entry in the main intra/published/cross protocols; false: only where an "
        "ablation group names it.",
    )
    input_size: int | None = Field(
        default=None, ge=1,
        description="The face size (H = W) this model must be trained at; validation fails when the store "
        "it would read (preprocess.size) differs, instead of training it at another size.",
    )


#: ModelEntry fields that are not training settings.
_ENTRY_ONLY = {"model", "options", "codebook", "input_size", "main"}


class IntraProtocol(_Strict):
    datasets: list[str] = Field(default_factory=list, description="Datasets evaluated with subject-wise k-fold.")
    folds: int = Field(default=3, ge=2, description="k of the subject-wise k-fold.")
    val_fraction: float = Field(
        default=0.2, gt=0, lt=1, description="Share of each fold's non-test subjects held out for validation."
    )


class CrossPair(_Strict):
    train: str = Field(description="Source dataset: its subjects are split into train and validation.")
    test: list[str] = Field(description="Target datasets, each tested whole.")
    training: TrainOverrides = Field(
        default_factory=TrainOverrides,
        description="Changes to the training settings for this source (the paper's per-setting LR, augmentation).",
    )
    variant: str = Field(
        default="", pattern=r"^[a-z0-9-]*$",
        description="Names a second model trained on the same source with other 'training' settings "
        "(the paper augments only PURE->MMPD and UBFC->MMPD); its files live under cross/source-<variant>.",
    )

    @property
    def fold(self) -> str:
        """The model's folder under cross/: 'source', or 'source-<variant>'."""
        return f"source-{self.variant}" if self.variant else "source"


class PublishedSplit(_Strict):
    """A fixed split of one dataset, as a paper published it, written out as explicit lists.

    Entries are subject IDs, or shell patterns matched against subject and session names
    (e.g. ``train-*`` for V4V's official folders). Every entry must match a session.
    """

    train: list[str] = Field(min_length=1, description="Training subjects (or patterns).")
    val: list[str] = Field(min_length=1, description="Validation subjects: checkpoint selection only, never test.")
    test: list[str] = Field(min_length=1, description="Test subjects (or patterns).")
    source: str = Field(default="", description="Where the split comes from (paper, table, protocol).")
    training: TrainOverrides = Field(
        default_factory=TrainOverrides, description="Changes to the training settings for this split (e.g. its LR)."
    )


class ProtocolsConfig(_Strict):
    intra: IntraProtocol = Field(default_factory=IntraProtocol)
    published: dict[str, PublishedSplit] = Field(
        default_factory=dict, description="Fixed published splits, by dataset name (config/paper.yaml)."
    )
    cross: list[CrossPair] = Field(default_factory=list, description="Cross-dataset source -> targets pairs.")
    train_fraction: float = Field(
        default=0.8, gt=0, lt=1, description="Cross-dataset source: first share of sorted subjects trains, rest validates."
    )


class AblationCurve(_Strict):
    """A numeric axis along the group's datasets or model entries: the group is also drawn as a curve."""

    of: Literal["dataset", "model"] = Field(description="Which of the group's lists the axis runs along.")
    label: str = Field(description="Axis title, e.g. 'label noise level'.")
    values: dict[str, float] = Field(
        description="Position on the axis of each of the group's datasets (of: dataset) or entries (of: model)."
    )


class AblationGroup(_Strict):
    """Model entries trained with subject-wise k-fold on each of some datasets, for one ablation table."""

    name: str = Field(pattern=r"^[a-z0-9-]+$", description="Names the group in the ablation table.")
    description: str = Field(default="", description="What the group varies (a sentence for the table).")
    models: list[str] = Field(min_length=1, description="Entries under 'models' compared in this group.")
    datasets: list[str] = Field(min_length=1, description="Datasets each entry is trained and tested on (k-fold).")
    curve: AblationCurve | None = Field(
        default=None, description="Also draw the group as metric-vs-axis curves (results/figures/ablation-<name>.*)."
    )

    @model_validator(mode="after")
    def _curve_covers_the_group(self) -> AblationGroup:
        if self.curve is not None:
            keys = self.datasets if self.curve.of == "dataset" else self.models
            if set(self.curve.values) != set(keys):
                raise ValueError(f"ablations.{self.name}.curve.values must give a position to each of the group's "
                                 f"{self.curve.of}s {sorted(keys)}, got {sorted(self.curve.values)}")
            if len(keys) < 2:
                raise ValueError(f"ablations.{self.name}.curve needs at least 2 {self.curve.of}s to draw a curve")
        return self


class MlflowConfig(_Strict):
    tracking_uri: str = Field(
        default="sqlite:///results/mlflow.db",
        description="MLflow tracking URI; the SQLite default is created once before parallel jobs start.",
    )
    experiment_prefix: str = Field(default="lqrppg", description="Experiments are named '<prefix>/<protocol>'.")


class ProjectConfig(_Strict):
    """Everything a run depends on. Unknown keys are errors, never silently ignored."""

    seed: int = Field(default=100, description="Global seed (synthesis, splits, training).")
    data_dir: Path = Field(default=Path("data"), description="Where synthetic datasets are written (raw/ and truth/).")
    results_dir: Path = Field(default=Path("results"), description="Root of every derived product.")
    workers: int = Field(default=1, ge=1, description="Worker processes for per-session work inside one job.")
    synthetic: dict[str, SynthDatasetSpec] = Field(
        default_factory=dict, description="Synthetic datasets to generate, by name; the layout names the reader."
    )
    datasets: dict[str, DatasetConfig] = Field(default_factory=dict, description="Real datasets, by name.")
    preprocess: PreprocessSettings = Field(default_factory=PreprocessSettings)
    evaluation: ChainSettings = Field(default_factory=ChainSettings)
    unsupervised: UnsupervisedConfig = Field(default_factory=UnsupervisedConfig)
    lq: LQSettings = Field(default_factory=LQSettings)
    training: TrainSettings = Field(default_factory=TrainSettings)
    models: dict[str, ModelEntry] = Field(
        default_factory=dict,
        description="Supervised models to train, by entry name (a registry name, or any name with 'model' set), "
        "with options and per-model training overrides.",
    )
    protocols: ProtocolsConfig = Field(default_factory=ProtocolsConfig)
    ablations: list[AblationGroup] = Field(
        default_factory=list,
        description="Ablation groups (config/ablations.yaml). Entries named only here are trained only for "
        "the ablations, not in the main intra/cross tables.",
    )
    bench: BenchSettings = Field(
        default_factory=BenchSettings,
        description="The cost benchmark (rule 'bench', `lqrppg bench`): models, device, passes, settings.",
    )
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)

    @model_validator(mode="after")
    def _check_names(self) -> ProjectConfig:
        clash = sorted(set(self.synthetic) & set(self.datasets))
        if clash:
            raise ValueError(f"dataset names declared both under 'synthetic' and 'datasets': {clash}")
        if not self.all_datasets():
            raise ValueError("no dataset configured: add one under 'synthetic' or 'datasets'")
        known = set(self.all_datasets())
        unknown = sorted(set(self.unsupervised.datasets or []) - known)
        if unknown:
            raise ValueError(f"unsupervised.datasets names unknown datasets {unknown}")
        unknown = sorted(set(self.protocols.intra.datasets) - known)
        if unknown:
            raise ValueError(f"protocols.intra.datasets names unknown datasets {unknown}")
        unknown = sorted(set(self.protocols.published) - known)
        if unknown:
            raise ValueError(f"protocols.published names unknown datasets {unknown}")
        for pair in self.protocols.cross:
            unknown = sorted({pair.train, *pair.test} - known)
            if unknown:
                raise ValueError(f"protocols.cross names unknown datasets {unknown}")
            # Pairs with one source and variant share one trained model, so they cannot train it differently.
            same_model = [p.training for p in self.protocols.cross if (p.train, p.fold) == (pair.train, pair.fold)]
            if any(t != same_model[0] for t in same_model):
                raise ValueError(f"protocols.cross: pairs with source {pair.train!r} give different 'training' "
                                 "overrides; they share one model: give a 'variant' to train a second one")
        for group in self.ablations:
            unknown = sorted(set(group.datasets) - known)
            if unknown:
                raise ValueError(f"ablations.{group.name}.datasets names unknown datasets {unknown}")
            unknown = sorted(set(group.models) - set(self.models))
            if unknown:
                raise ValueError(f"ablations.{group.name}.models names entries not under 'models': {unknown}")
        if dupes := sorted({g.name for g in self.ablations if [h.name for h in self.ablations].count(g.name) > 1}):
            raise ValueError(f"ablations: group names given twice: {dupes}")
        targets = [(p.train, t) for p in self.protocols.cross for t in p.test]
        if dupes := sorted({pair for pair in targets if targets.count(pair) > 1}):
            raise ValueError(f"protocols.cross: source -> target pairs given twice: {dupes}")
        return self

    def train_settings(self, model: str, dataset: str | None = None, protocol: str | None = None,
                       fold: str | None = None) -> TrainSettings:
        """The shared training settings, then the model's overrides, then the protocol's for
        this dataset (a published split's, or the cross pair's whose source it is)."""
        entry = self.models[model].model_dump(exclude_none=True, exclude=_ENTRY_ONLY)
        settings = self.training.model_copy(update=entry)
        protocol_overrides = None
        if protocol == "published" and dataset in self.protocols.published:
            protocol_overrides = self.protocols.published[dataset].training
        elif protocol == "cross":
            protocol_overrides = next(
                (p.training for p in self.protocols.cross if p.train == dataset and p.fold == (fold or "source")), None)
        if protocol_overrides is not None:
            settings = settings.model_copy(update=protocol_overrides.model_dump(exclude_none=True))
        return settings

    def main_models(self) -> list[str]:
        """Model entries of the main intra/published/cross protocols (``main: true``)."""
        return sorted(m for m, e in self.models.items() if e.main)

    def ablation_runs(self) -> list[tuple[str, str]]:
        """(model entry, dataset) pairs the ablation groups train with k-fold, without repeats."""
        return list(dict.fromkeys((m, d) for g in self.ablations for m in g.models for d in g.datasets))

    def registry_model(self, entry: str) -> str:
        """The registry name behind a ``models`` entry."""
        if entry not in self.models:
            raise ConfigError(f"model {entry!r} is not configured under 'models'; configured: {sorted(self.models)}")
        return self.models[entry].model or entry

    def codebook_kind(self, entry: str) -> str:
        """Which codebooks a models entry's pseudo labels come from (learned LQ, uniform, k-means)."""
        return self.models[entry].codebook or self.lq.codebook

    def lq_settings(self, codebook: str) -> LQSettings:
        return self.lq.model_copy(update={"codebook": codebook})

    def lq_selection_chain(self) -> ChainSettings:
        """HR chain for choosing LQ epochs: Welch, because single 160-frame chunks give a
        7 bpm periodogram grid that ties most epochs (evaluation.md §1 table)."""
        return self.evaluation.model_copy(update={"hr_method": "welch", "window_s": None})

    # -- derived views -------------------------------------------------------------------------
    def all_datasets(self) -> dict[str, DatasetConfig]:
        """Real and synthetic datasets as one mapping, synthetic ones with their derived paths."""
        merged = {
            name: DatasetConfig(
                reader=spec.layout,
                root=self.data_dir / "raw" / name,
                fps=spec.fps,
                truth=self.data_dir / "truth" / name,
            )
            for name, spec in self.synthetic.items()
        }
        merged.update(self.datasets)
        return merged

    def dataset(self, name: str) -> DatasetConfig:
        datasets = self.all_datasets()
        if name not in datasets:
            raise ConfigError(f"unknown dataset {name!r}; configured datasets: {sorted(datasets)}")
        return datasets[name]

    def unsupervised_datasets(self) -> list[str]:
        return list(self.unsupervised.datasets or self.all_datasets())

    def config_hash(self) -> str:
        """Short hash of the validated config (identifies a run's configuration)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    # -- paths (one place, used by the CLI and the Snakefile) -----------------------------------
    def cross_pair(self, source: str, target: str) -> CrossPair:
        """The cross-dataset pair that tests ``target`` with a model trained on ``source``."""
        for pair in self.protocols.cross:
            if pair.train == source and target in pair.test:
                return pair
        raise ConfigError(f"protocols.cross has no pair {source} -> {target}")

    def manifest_path(self, dataset: str) -> Path:
        return self.results_dir / "raw" / dataset / "manifest.parquet"

    def preprocess_for(self, dataset: str) -> PreprocessSettings:
        """The global preprocess settings with the dataset's own changes (``datasets.<name>.preprocess``)."""
        changes = self.dataset(dataset).preprocess
        if not changes:
            return self.preprocess
        try:
            return PreprocessSettings.model_validate({**self.preprocess.model_dump(), **changes})
        except ValidationError as err:
            prefix = f"datasets.{dataset}.preprocess"
            raise ConfigError(_format_validation_error(err, prefix, prefix=prefix)) from None

    def model_input(self, dataset: str) -> tuple[int, int]:
        """(chunk_length, size) of a dataset's store: the frames and face size a model sees."""
        settings = self.preprocess_for(dataset)
        return settings.chunk_length, settings.size

    def model_datasets(self) -> dict[str, list[str]]:
        """For each model entry, the datasets it is trained or tested on (main protocols, ablations)."""
        main = set(self.protocols.intra.datasets) | set(self.protocols.published)
        main |= {d for p in self.protocols.cross for d in (p.train, *p.test)}
        used = {m: set(main) if e.main else set() for m, e in self.models.items()}
        for group in self.ablations:
            for m in group.models:
                used[m] |= set(group.datasets)
        return {m: sorted(ds) for m, ds in used.items()}

    def store_path(self, dataset: str) -> Path:
        return self.results_dir / "processed" / dataset / self.preprocess_for(dataset).prep_id()


def _deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _format_validation_error(err: ValidationError, source: str, prefix: str = "") -> str:
    lines = [f"invalid configuration ({source}):"]
    for item in err.errors():
        key = ".".join([prefix] * bool(prefix) + [str(p) for p in item["loc"]]) or "<top level>"
        if item["type"] == "extra_forbidden":
            lines.append(f"  unknown config key '{key}'")
        else:
            lines.append(f"  {key}: {item['msg']}")
    return "\n".join(lines)


def validate_config(raw: dict[str, Any], source: str = "<dict>") -> ProjectConfig:
    """Validate a raw mapping (e.g. Snakemake's ``config``); errors name the offending key."""
    try:
        cfg = ProjectConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None
    _check_registered_names(cfg)
    return cfg


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node, deep=False):
        # Keys written in this mapping must be unique; keys merged in from an anchor (<<: *a)
        # may be overridden by them, as YAML intends.
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config(paths: Sequence[str | Path]) -> ProjectConfig:
    """Load and deep-merge YAML files (later files override earlier ones), then validate."""
    if not paths:
        raise ConfigError("no config file given")
    raw: dict[str, Any] = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            layer = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
        if not isinstance(layer, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        raw = _deep_merge(raw, layer)
    return validate_config(raw, source=", ".join(str(p) for p in paths))


def _check_registered_names(cfg: ProjectConfig) -> None:
    """Names that refer to registries are checked here, before any job runs."""
    from lqrppg.datasets import available_datasets, get_reader
    from lqrppg.unsupervised import available_methods

    readers = set(available_datasets())
    for name, ds in cfg.all_datasets().items():
        if ds.reader not in readers:
            raise ConfigError(
                f"datasets.{name}.reader: unknown dataset reader {ds.reader!r}; known: {sorted(readers)}"
            )
        try:
            get_reader(ds.reader).parse_options(ds.options)
        except ConfigError as err:
            raise ConfigError(f"datasets.{name}.options: {err}") from None
        cfg.preprocess_for(name)  # ConfigError naming datasets.<name>.preprocess.<key>
    for pair in cfg.protocols.cross:
        source = cfg.model_input(pair.train)
        for target in pair.test:
            if cfg.model_input(target) != source:
                raise ConfigError(
                    f"protocols.cross: {pair.train} -> {target}: a model trained on (chunk_length, size) = "
                    f"{source} cannot test {target}'s {cfg.model_input(target)}; set the same "
                    f"datasets.<name>.preprocess.chunk_length and size on both")
    from lqrppg.models import available_models

    for key, names in (("bench.models", cfg.bench.models or []), ("bench.reference", [cfg.bench.reference]),
                       ("bench.target", [cfg.bench.target])):
        unknown = sorted(set(names) - set(available_models()))
        if unknown:
            raise ConfigError(f"{key}: unknown model {unknown[0]!r}; known: {sorted(available_models())}")
    methods = set(available_methods())
    for method in cfg.unsupervised.methods:
        if method not in methods:
            raise ConfigError(f"unsupervised.methods: unknown method {method!r}; known: {sorted(methods)}")
    _check_models(cfg)


def _check_models(cfg: ProjectConfig) -> None:
    """Model entries: registry names, options, and their input contract, checked before any job runs."""
    from lqrppg.models import available_models, get_model

    known = set(available_models())
    used = cfg.model_datasets()
    for name, entry in cfg.models.items():
        model = entry.model or name
        key = f"models.{name}" + (".model" if entry.model else "")
        if model not in known:
            raise ConfigError(f"{key}: unknown model {model!r}; known: {sorted(known)}")
        cls = get_model(model)
        options_cls = getattr(cls, "Options", None)
        if entry.options and options_cls is None:
            raise ConfigError(f"models.{name}.options: model {model!r} takes no options")
        if options_cls is not None:
            try:
                options_cls.model_validate(entry.options)
            except ValidationError as err:
                raise ConfigError(_format_validation_error(err, f"models.{name}.options",
                                                           prefix=f"models.{name}.options")) from None
        if entry.codebook is not None and cls.label_type != "quantized":
            raise ConfigError(f"models.{name}.codebook: model {model!r} trains on the continuous label, "
                              "it has no pseudo labels to take codebooks from")
        # Every store the entry reads, or the global settings when no protocol uses it yet.
        shapes = {cfg.model_input(d): d for d in used[name]} or {
            (cfg.preprocess.chunk_length, cfg.preprocess.size): None}
        for (frames, size), dataset in shapes.items():
            where = (f"datasets.{dataset}.preprocess" if dataset and cfg.dataset(dataset).preprocess
                     else "preprocess")
            if entry.input_size is not None and entry.input_size != size:
                raise ConfigError(
                    f"models.{name}.input_size: the model takes {entry.input_size}x{entry.input_size} faces but "
                    f"the store{f' of {dataset}' if dataset else ''} is preprocessed at {where}.size={size}"
                )
            try:
                cls.check_input(frames, size, size)
            except ValueError as err:
                raise ConfigError(
                    f"models.{name}: cannot take {where}.chunk_length={frames}, {where}.size={size}"
                    f"{f' (dataset {dataset})' if dataset else ''}: {err}"
                ) from None


def json_schema() -> dict[str, Any]:
    """The JSON schema Snakemake validates the config against (generated, never hand-edited)."""
    schema = ProjectConfig.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["description"] = "lqrppg pipeline configuration (generated by `lqrppg config schema`)."
    return schema
