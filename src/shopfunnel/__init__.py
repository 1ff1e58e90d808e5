"""shopfunnel: see an online store's sales funnel and turn what it finds into action.

Everything a notebook or script needs is importable from here; the rest may change.
"""

from shopfunnel.audiences import (
    abandoned_carts,
    export_audience,
)
from shopfunnel.benchmarks import (
    load_benchmarks,
)
from shopfunnel.clv import (
    BetaGeoModel,
    GammaGammaModel,
    customer_value,
    holdout_check,
    summary_from_orders,
)
from shopfunnel.datasets import (
    cdnow_orders,
    load_cdnow,
    load_dataset,
)
from shopfunnel.diagnose import (
    DiagnoseSettings,
    Diagnosis,
    audience_persons,
    diagnose,
)
from shopfunnel.errors import (
    ConfigError,
    InputError,
    Reject,
    ShopfunnelError,
    StoreError,
    ValidationError,
)
from shopfunnel.funnel import (
    Step,
    funnel,
)
from shopfunnel.funnel_result import (
    FunnelResult,
)
from shopfunnel.funnel_spark import (
    SparkEngine,
    local_spark_session,
)
from shopfunnel.incidents import (
    IncidentSettings,
    find_incidents,
)
from shopfunnel.model import (
    Model,
    Stage,
    load_model,
)
from shopfunnel.playbook import (
    load_playbook,
)
from shopfunnel.report import (
    build_report,
    write_report,
)
from shopfunnel.retention import (
    RetentionSummary,
    activity_retention,
    cohort_matrix,
    cohort_retention,
    orders_per_customer,
    repeat_purchase_rate,
    retention_summary,
    time_between_orders,
    time_between_orders_distribution,
)
from shopfunnel.rfm import (
    quantile_scores,
    rfm_group_summary,
    rfm_table,
)
from shopfunnel.sample import (
    CheckoutFailure,
    PaymentOutage,
    TrafficSpike,
    generate_sample,
    write_sample,
)
from shopfunnel.server import (
    create_app,
)
from shopfunnel.stages import (
    StagePlacement,
    place_persons,
    placement,
    stage_flow,
    stage_summary,
    stage_transitions,
)
from shopfunnel.store import (
    LoadResult,
    Store,
)
from shopfunnel.whatif import (
    Tier,
    WhatIf,
    free_shipping,
    parse_tiers,
    tiered_discount,
)
from shopfunnel.winback import (
    lapsed_customers,
)

__all__ = [
    "BetaGeoModel",
    "CheckoutFailure",
    "ConfigError",
    "DiagnoseSettings",
    "Diagnosis",
    "FunnelResult",
    "GammaGammaModel",
    "IncidentSettings",
    "InputError",
    "LoadResult",
    "Model",
    "PaymentOutage",
    "Reject",
    "RetentionSummary",
    "ShopfunnelError",
    "SparkEngine",
    "Stage",
    "StagePlacement",
    "Step",
    "Store",
    "StoreError",
    "Tier",
    "TrafficSpike",
    "ValidationError",
    "WhatIf",
    "abandoned_carts",
    "activity_retention",
    "audience_persons",
    "build_report",
    "cdnow_orders",
    "cohort_matrix",
    "cohort_retention",
    "create_app",
    "customer_value",
    "diagnose",
    "export_audience",
    "find_incidents",
    "free_shipping",
    "funnel",
    "generate_sample",
    "holdout_check",
    "lapsed_customers",
    "load_benchmarks",
    "load_cdnow",
    "load_dataset",
    "load_model",
    "load_playbook",
    "local_spark_session",
    "orders_per_customer",
    "parse_tiers",
    "place_persons",
    "placement",
    "quantile_scores",
    "repeat_purchase_rate",
    "retention_summary",
    "rfm_group_summary",
    "rfm_table",
    "stage_flow",
    "stage_summary",
    "stage_transitions",
    "summary_from_orders",
    "tiered_discount",
    "time_between_orders",
    "time_between_orders_distribution",
    "write_report",
    "write_sample",
]
__version__ = "0.1.0"
