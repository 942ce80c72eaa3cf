"""The results database: SQLite through SQLAlchemy 2. Open with :func:`open_store`; read with the
query functions re-exported here (stable API used by the window and the CLI); the runner writes
through :mod:`core.store.record`; every consumer shows variants as :class:`ResultRow`."""

from core.store.analysis import (
    SensitivityCell,
    SensitivityMap,
    export_sensitivity,
    sensitivity_map,
    sensitivity_maps,
)
from core.store.db import SCHEMA_VERSION, Store, StoreError, open_store
from core.store.manage import (
    DeleteReport,
    GarbageReport,
    collect_garbage,
    delete_run,
    run_dependents,
    run_disk_usage,
    set_run_labels,
)
from core.store.queries import (
    EXPORT_FORMATS,
    RunInfo,
    Table,
    export_table,
    get_run,
    get_variants,
    list_runs,
    past_step_seconds,
    result_rows,
    results_table,
    run_environment,
    run_recipe_text,
    run_variants,
    table_of,
    variant_info,
    variant_metrics,
    variant_predictions,
    variants_of_model,
)
from core.store.record import mark_interrupted_runs
from core.store.rows import MetricValue, ResultRow, VariantInfo

__all__ = [
    "EXPORT_FORMATS",
    "SCHEMA_VERSION",
    "DeleteReport",
    "GarbageReport",
    "MetricValue",
    "ResultRow",
    "RunInfo",
    "SensitivityCell",
    "SensitivityMap",
    "Store",
    "StoreError",
    "Table",
    "VariantInfo",
    "collect_garbage",
    "delete_run",
    "export_sensitivity",
    "export_table",
    "get_run",
    "get_variants",
    "list_runs",
    "mark_interrupted_runs",
    "open_store",
    "past_step_seconds",
    "result_rows",
    "results_table",
    "run_dependents",
    "run_disk_usage",
    "run_environment",
    "run_recipe_text",
    "run_variants",
    "sensitivity_map",
    "sensitivity_maps",
    "set_run_labels",
    "table_of",
    "variant_info",
    "variant_metrics",
    "variant_predictions",
    "variants_of_model",
]
