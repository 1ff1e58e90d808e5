"""shopfunnel: see an online store's sales funnel and turn what it finds into action.

Everything a notebook or script needs is importable from here; the rest may change.
"""

from shopfunnel.audiences import (
    abandoned_carts,
    export_audience,
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
from shopfunnel.model import (
    Model,
    Stage,
    load_model,
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
from shopfunnel.winback import (
    lapsed_customers,
)

__all__ = [
    "BetaGeoModel",
    "CheckoutFailure",
    "ConfigError",
    "FunnelResult",
    "GammaGammaModel",
    "InputError",
    "LoadResult",
    "Model",
    "PaymentOutage",
    "Reject",
    "RetentionSummary",
    "ShopfunnelError",
    "Stage",
    "StagePlacement",
    "Step",
    "Store",
    "StoreError",
    "TrafficSpike",
    "ValidationError",
    "abandoned_carts",
    "activity_retention",
    "cdnow_orders",
    "cohort_matrix",
    "cohort_retention",
    "customer_value",
    "export_audience",
    "funnel",
    "generate_sample",
    "holdout_check",
    "lapsed_customers",
    "load_cdnow",
    "load_dataset",
    "load_model",
    "orders_per_customer",
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
    "time_between_orders",
    "time_between_orders_distribution",
    "write_sample",
]
__version__ = "0.1.0"
