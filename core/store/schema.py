"""The results database schema (SQLAlchemy 2 declarative). Only core.store touches these classes;
readers get plain dataclasses from :mod:`core.store.queries`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Run status values.
RUNNING = "running"
FINISHED = "finished"
FAILED = "failed"
CANCELLED = "cancelled"
INTERRUPTED = "interrupted"  # found running with no live worker (killed, crashed, power loss)
RESUMABLE = (FAILED, CANCELLED, INTERRUPTED)


class Base(DeclarativeBase):
    pass


class Model(Base):
    __tablename__ = "models"
    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String, index=True)  # str(ModelRef)
    kind: Mapped[str] = mapped_column(String)
    content_hash: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    __table_args__ = (UniqueConstraint("ref", "content_hash"),)


class Dataset(Base):
    __tablename__ = "datasets"
    id: Mapped[int] = mapped_column(primary_key=True)
    task: Mapped[str] = mapped_column(String)
    content_hash: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    __table_args__ = (UniqueConstraint("task", "content_hash"),)


class Recipe(Base):
    __tablename__ = "recipes"
    id: Mapped[int] = mapped_column(primary_key=True)
    content_hash: Mapped[str] = mapped_column(String, unique=True)
    name: Mapped[str] = mapped_column(String, default="")
    body: Mapped[str] = mapped_column(Text)  # canonical JSON of the recipe
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Environment(Base):
    __tablename__ = "environments"
    id: Mapped[int] = mapped_column(primary_key=True)
    content_hash: Mapped[str] = mapped_column(String, unique=True)
    body: Mapped[str] = mapped_column(Text)  # JSON: versions, CPU model/flags, cores (a run's: threads too; a variant's: host)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    recipe_id: Mapped[int] = mapped_column(ForeignKey("recipes.id"))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    environment_id: Mapped[int | None] = mapped_column(ForeignKey("environments.id"))
    task: Mapped[str] = mapped_column(String)
    seed: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    error: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[str | None] = mapped_column(String)
    pid: Mapped[int | None] = mapped_column(Integer)
    pid_start: Mapped[str | None] = mapped_column(String)  # process start time, guards against pid reuse
    host: Mapped[str | None] = mapped_column(String)
    artifacts_dir: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)  # 1 + number of resumes
    primary_metric: Mapped[str | None] = mapped_column(String)  # the task's headline metric (schema 2)
    name: Mapped[str] = mapped_column(String, default="", server_default="")  # the user's labels (schema 3)
    tags: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")  # JSON list of short words
    note: Mapped[str] = mapped_column(Text, default="", server_default="")

    recipe: Mapped[Recipe] = relationship()
    model: Mapped[Model] = relationship()
    dataset: Mapped[Dataset] = relationship()
    environment: Mapped[Environment | None] = relationship()


class Variant(Base):
    """One model produced by one step (or the baseline, step_index 0) of one run."""

    __tablename__ = "variants"
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("variants.id", ondelete="SET NULL"))
    step_index: Mapped[int] = mapped_column(Integer)  # 0 = baseline, k = k-th chain entry (1-based)
    step_id: Mapped[str] = mapped_column(String)
    label: Mapped[str] = mapped_column(String)
    config: Mapped[str] = mapped_column(Text)  # JSON of the full config
    cache_key: Mapped[str] = mapped_column(String, index=True)
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    cached_from_id: Mapped[int | None] = mapped_column(ForeignKey("variants.id", ondelete="SET NULL"))
    seconds: Mapped[float] = mapped_column(Float, default=0.0)  # apply + save + measure wall time
    info: Mapped[str] = mapped_column(Text, default="{}")  # JSON of the step's report
    swept: Mapped[str] = mapped_column(Text, default="{}")  # JSON: swept field -> this variant's value (schema 2)
    flags: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of {code, text} (schema 3)
    seed: Mapped[int | None] = mapped_column(Integer)  # the seed this variant was made with (schema 3)
    node: Mapped[int | None] = mapped_column(Integer)  # its place in the variant tree, depth first (schema 3)
    # The machine it was made and timed on: environments.id of its fingerprint (schema 4). A plain
    # integer, not a declared foreign key, so migrated and new files have the same table.
    environment_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    __table_args__ = (Index("ix_variants_run_step", "run_id", "step_index"),)


class Metric(Base):
    __tablename__ = "metrics"
    id: Mapped[int] = mapped_column(primary_key=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String)
    value: Mapped[float | None] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String, default="")
    split: Mapped[str] = mapped_column(String, default="")


class Prediction(Base):
    """A variant's per-example predictions on the evaluated dev rows: the paired intervals against
    its parent and the disagreement views are computed from them, never by re-running a model."""

    __tablename__ = "predictions"
    id: Mapped[int] = mapped_column(primary_key=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"), index=True)
    split: Mapped[str] = mapped_column(String)
    body: Mapped[str] = mapped_column(Text)  # JSON: {"indices": [...], "predictions": [...]}


class Artifact(Base):
    __tablename__ = "artifacts"
    id: Mapped[int] = mapped_column(primary_key=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(Text)
    bytes: Mapped[int] = mapped_column(Integer)


class SensitivityMap(Base):
    """One sensitivity analysis of a stored variant (schema 4): each transform applied to one part of
    the model at a time, measured against the untouched variant on the same dev examples."""

    __tablename__ = "sensitivity_maps"
    id: Mapped[int] = mapped_column(primary_key=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"), index=True)
    metric: Mapped[str] = mapped_column(String)  # the task's primary metric
    base_metric: Mapped[float | None] = mapped_column(Float)  # the untouched variant's, on the same examples
    examples: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    grouping: Mapped[str] = mapped_column(String)  # "layer" | "role"
    transforms: Mapped[str] = mapped_column(Text)  # JSON list, e.g. ["int8", "nbit:6", "prune:0.3"]
    status: Mapped[str] = mapped_column(String)  # running | finished | cancelled | failed
    body: Mapped[str] = mapped_column(Text, default="{}")  # JSON: per-part sizes, settings, error
    seconds: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class SensitivityCell(Base):
    """One cell of a map: the metric change when ``transform`` is applied to ``layer`` alone."""

    __tablename__ = "sensitivity"
    id: Mapped[int] = mapped_column(primary_key=True)
    map_id: Mapped[int] = mapped_column(ForeignKey("sensitivity_maps.id", ondelete="CASCADE"), index=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    transform: Mapped[str] = mapped_column(String)
    layer: Mapped[str] = mapped_column(String)  # "layer 3", "embeddings", "head", or a role ("query")
    position: Mapped[int] = mapped_column(Integer)  # the part's place, bottom to top
    metric: Mapped[float | None] = mapped_column(Float)  # the metric with the transform applied
    delta: Mapped[float | None] = mapped_column(Float)  # metric minus the untouched variant's
    ci_low: Mapped[float | None] = mapped_column(Float)  # paired 95 % bootstrap interval of delta
    ci_high: Mapped[float | None] = mapped_column(Float)
    examples: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime)
