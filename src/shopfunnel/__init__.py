"""shopfunnel: see an online store's sales funnel and turn what it finds into action.

Everything a notebook or script needs is importable from here; the rest may change.
Names load on first use (PEP 562), so ``import shopfunnel`` and the command line start fast:
the heavy libraries (pandas, numba, scipy, FastAPI, Plotly) load only with what needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> module that defines it
_EXPORTS: dict[str, str] = {
    "Adjusted": "shopfunnel.experiments",
    "Audience": "shopfunnel.audiences.definitions",
    "BayesianResult": "shopfunnel.experiments",
    "BetaGeoModel": "shopfunnel.customers.clv",
    "CheckoutFailure": "shopfunnel.sample",
    "ConversionDrop": "shopfunnel.sample",
    "ConfigError": "shopfunnel.errors",
    "DiagnoseSettings": "shopfunnel.diagnosis.diagnose",
    "Diagnosis": "shopfunnel.diagnosis.diagnose",
    "Draw": "shopfunnel.programs.giveaways",
    "ExperimentReport": "shopfunnel.experiments",
    "Flow": "shopfunnel.audiences.flow_definitions",
    "FrequentistResult": "shopfunnel.experiments",
    "FunnelResult": "shopfunnel.funnel.result",
    "GammaGammaModel": "shopfunnel.customers.clv",
    "HoldoutLift": "shopfunnel.experiments",
    "IncidentSettings": "shopfunnel.diagnosis.incidents",
    "LevelShiftSettings": "shopfunnel.diagnosis.level_shifts",
    "InputError": "shopfunnel.errors",
    "Journey": "shopfunnel.journey.person",
    "LoadResult": "shopfunnel.store.store",
    "Mean": "shopfunnel.experiments",
    "Metric": "shopfunnel.experiments",
    "Model": "shopfunnel.model",
    "NoContactsError": "shopfunnel.audiences",
    "Offer": "shopfunnel.programs.offers",
    "OfferResult": "shopfunnel.programs.offer_results",
    "PaymentOutage": "shopfunnel.sample",
    "PlantedExperiment": "shopfunnel.sample",
    "ProgramsOverview": "shopfunnel.programs.overview",
    "Proportion": "shopfunnel.experiments",
    "Ratio": "shopfunnel.experiments",
    "ReferralRule": "shopfunnel.programs.referrals",
    "Reject": "shopfunnel.errors",
    "RetentionSummary": "shopfunnel.customers.retention",
    "ShopfunnelError": "shopfunnel.errors",
    "SignatureError": "shopfunnel.webhooks.signing",
    "SparkEngine": "shopfunnel.funnel.spark",
    "SparkEvents": "shopfunnel.store.spark",
    "SrmResult": "shopfunnel.experiments",
    "Stage": "shopfunnel.model",
    "StagePlacement": "shopfunnel.stages.placement",
    "Store": "shopfunnel.store.store",
    "StoreError": "shopfunnel.errors",
    "Tier": "shopfunnel.diagnosis.whatif",
    "TrafficSpike": "shopfunnel.sample",
    "UnknownNameError": "shopfunnel.errors",
    "ValidationError": "shopfunnel.errors",
    "WhatIf": "shopfunnel.diagnosis.whatif",
    "abandoned_carts": "shopfunnel.audiences",
    "activity_retention": "shopfunnel.customers.retention",
    "analyze_experiment": "shopfunnel.experiments",
    "assign_variant": "shopfunnel.experiments",
    "audience_members": "shopfunnel.audiences.saved",
    "audience_persons": "shopfunnel.diagnosis.diagnose",
    "bayesian_test": "shopfunnel.experiments",
    "build_report": "shopfunnel.report",
    "cdnow_orders": "shopfunnel.ingest.datasets",
    "code_status": "shopfunnel.programs.codes",
    "cohort_matrix": "shopfunnel.customers.retention",
    "cohort_retention": "shopfunnel.customers.retention",
    "compare_arms": "shopfunnel.experiments",
    "create_app": "shopfunnel.server",
    "create_audience": "shopfunnel.audiences.saved",
    "create_offer": "shopfunnel.programs.offers",
    "customer_value": "shopfunnel.customers.clv",
    "deliver_due": "shopfunnel.webhooks.delivery",
    "diagnose": "shopfunnel.diagnosis.diagnose",
    "draw_giveaway": "shopfunnel.programs.giveaways",
    "due_now": "shopfunnel.audiences.flows",
    "enqueue_audience_changes": "shopfunnel.webhooks.outbox",
    "enqueue_flow_sends": "shopfunnel.webhooks.outbox",
    "erase_person": "shopfunnel.store.erase",
    "evaluate_recommendations": "shopfunnel.programs.recommend",
    "export_audience": "shopfunnel.audiences",
    "find_incidents": "shopfunnel.diagnosis.incidents",
    "free_shipping": "shopfunnel.diagnosis.whatif",
    "events_for_sessions": "shopfunnel.sample",
    "find_level_shifts": "shopfunnel.diagnosis.level_shifts",
    "generate_sample": "shopfunnel.sample",
    "holdout_check": "shopfunnel.customers.clv",
    "holdout_lift": "shopfunnel.experiments",
    "in_holdout": "shopfunnel.experiments",
    "issue_offer_codes": "shopfunnel.programs.offers",
    "issue_referral_codes": "shopfunnel.programs.referrals",
    "lapsed_customers": "shopfunnel.customers.winback",
    "list_experiments": "shopfunnel.experiments",
    "load_benchmarks": "shopfunnel.diagnosis.benchmarks",
    "load_cdnow": "shopfunnel.ingest.datasets",
    "load_dataset": "shopfunnel.ingest.datasets",
    "load_model": "shopfunnel.model",
    "load_playbook": "shopfunnel.diagnosis.playbook",
    "load_sample": "shopfunnel.sample",
    "local_spark_session": "shopfunnel.funnel.spark",
    "near_threshold": "shopfunnel.programs.offer_carts",
    "offer_result": "shopfunnel.programs.offer_results",
    "orders_per_customer": "shopfunnel.customers.retention",
    "parse_tiers": "shopfunnel.diagnosis.whatif",
    "pay_referrals": "shopfunnel.programs.referrals",
    "person_journey": "shopfunnel.journey.person",
    "place_persons": "shopfunnel.stages.placement",
    "placement": "shopfunnel.stages.placement",
    "placements": "shopfunnel.stages.placement",
    "preview_list": "shopfunnel.programs.giveaways",
    "programs_overview": "shopfunnel.programs.overview",
    "qualifying_persons": "shopfunnel.programs.audience",
    "quantile_scores": "shopfunnel.customers.rfm",
    "recommend_for_persons": "shopfunnel.programs.recommend",
    "referral_ledger": "shopfunnel.programs.referrals",
    "refresh_audience": "shopfunnel.audiences.membership",
    "related_items": "shopfunnel.programs.recommend",
    "repeat_purchase_rate": "shopfunnel.customers.retention",
    "retention_summary": "shopfunnel.customers.retention",
    "rfm_group_summary": "shopfunnel.customers.rfm",
    "rfm_table": "shopfunnel.customers.rfm",
    "run_flow": "shopfunnel.audiences.flows",
    "run_scheduled": "shopfunnel.audiences.schedule",
    "srm_check": "shopfunnel.experiments",
    "stage_flow": "shopfunnel.stages.summary",
    "stage_summary": "shopfunnel.stages.summary",
    "stage_transitions": "shopfunnel.stages.summary",
    "store_activity_retention": "shopfunnel.customers.retention",
    "summary_from_orders": "shopfunnel.customers.clv",
    "tiered_discount": "shopfunnel.diagnosis.whatif",
    "time_between_orders": "shopfunnel.customers.retention",
    "time_between_orders_distribution": "shopfunnel.customers.retention",
    "verify_draw": "shopfunnel.programs.giveaways",
    "verify_signature": "shopfunnel.webhooks.signing",
    "welch_t_test": "shopfunnel.experiments",
    "write_report": "shopfunnel.report",
    "write_sample": "shopfunnel.sample",
}

# Eager on purpose: the package ``shopfunnel.funnel`` shares the function's name, and the
# first import of a submodule binds the package over a lazily loaded function. Both are light.
from shopfunnel.funnel.api import Step, funnel  # noqa: E402

if TYPE_CHECKING:
    from shopfunnel.audiences import (
        NoContactsError,
        abandoned_carts,
        export_audience,
    )
    from shopfunnel.audiences.definitions import (
        Audience,
    )
    from shopfunnel.audiences.flow_definitions import (
        Flow,
    )
    from shopfunnel.audiences.flows import (
        due_now,
        run_flow,
    )
    from shopfunnel.audiences.membership import (
        refresh_audience,
    )
    from shopfunnel.audiences.saved import (
        audience_members,
        create_audience,
    )
    from shopfunnel.audiences.schedule import (
        run_scheduled,
    )
    from shopfunnel.customers.clv import (
        BetaGeoModel,
        GammaGammaModel,
        customer_value,
        holdout_check,
        summary_from_orders,
    )
    from shopfunnel.customers.retention import (
        RetentionSummary,
        activity_retention,
        cohort_matrix,
        cohort_retention,
        orders_per_customer,
        repeat_purchase_rate,
        retention_summary,
        store_activity_retention,
        time_between_orders,
        time_between_orders_distribution,
    )
    from shopfunnel.customers.rfm import (
        quantile_scores,
        rfm_group_summary,
        rfm_table,
    )
    from shopfunnel.customers.winback import (
        lapsed_customers,
    )
    from shopfunnel.diagnosis.benchmarks import (
        load_benchmarks,
    )
    from shopfunnel.diagnosis.diagnose import (
        DiagnoseSettings,
        Diagnosis,
        audience_persons,
        diagnose,
    )
    from shopfunnel.diagnosis.incidents import (
        IncidentSettings,
        find_incidents,
    )
    from shopfunnel.diagnosis.level_shifts import (
        LevelShiftSettings,
        find_level_shifts,
    )
    from shopfunnel.diagnosis.playbook import (
        load_playbook,
    )
    from shopfunnel.diagnosis.whatif import (
        Tier,
        WhatIf,
        free_shipping,
        parse_tiers,
        tiered_discount,
    )
    from shopfunnel.errors import (
        ConfigError,
        InputError,
        Reject,
        ShopfunnelError,
        StoreError,
        UnknownNameError,
        ValidationError,
    )
    from shopfunnel.experiments import (
        Adjusted,
        BayesianResult,
        ExperimentReport,
        FrequentistResult,
        HoldoutLift,
        Mean,
        Metric,
        Proportion,
        Ratio,
        SrmResult,
        analyze_experiment,
        assign_variant,
        bayesian_test,
        compare_arms,
        holdout_lift,
        in_holdout,
        list_experiments,
        srm_check,
        welch_t_test,
    )
    from shopfunnel.funnel.result import (
        FunnelResult,
    )
    from shopfunnel.funnel.spark import (
        SparkEngine,
        local_spark_session,
    )
    from shopfunnel.ingest.datasets import (
        cdnow_orders,
        load_cdnow,
        load_dataset,
    )
    from shopfunnel.journey.person import Journey, person_journey
    from shopfunnel.model import (
        Model,
        Stage,
        load_model,
    )
    from shopfunnel.programs.audience import (
        qualifying_persons,
    )
    from shopfunnel.programs.codes import (
        code_status,
    )
    from shopfunnel.programs.giveaways import (
        Draw,
        draw_giveaway,
        preview_list,
        verify_draw,
    )
    from shopfunnel.programs.offer_carts import (
        near_threshold,
    )
    from shopfunnel.programs.offer_results import (
        OfferResult,
        offer_result,
    )
    from shopfunnel.programs.offers import (
        Offer,
        create_offer,
        issue_offer_codes,
    )
    from shopfunnel.programs.overview import ProgramsOverview, programs_overview
    from shopfunnel.programs.recommend import (
        evaluate_recommendations,
        recommend_for_persons,
        related_items,
    )
    from shopfunnel.programs.referrals import (
        ReferralRule,
        issue_referral_codes,
        pay_referrals,
        referral_ledger,
    )
    from shopfunnel.report import (
        build_report,
        write_report,
    )
    from shopfunnel.sample import (
        CheckoutFailure,
        ConversionDrop,
        PaymentOutage,
        PlantedExperiment,
        TrafficSpike,
        events_for_sessions,
        generate_sample,
        load_sample,
        write_sample,
    )
    from shopfunnel.server import (
        create_app,
    )
    from shopfunnel.stages.placement import (
        StagePlacement,
        place_persons,
        placement,
        placements,
    )
    from shopfunnel.stages.summary import (
        stage_flow,
        stage_summary,
        stage_transitions,
    )
    from shopfunnel.store.erase import (
        erase_person,
    )
    from shopfunnel.store.spark import (
        SparkEvents,
    )
    from shopfunnel.store.store import (
        LoadResult,
        Store,
    )
    from shopfunnel.webhooks.delivery import (
        deliver_due,
    )
    from shopfunnel.webhooks.outbox import (
        enqueue_audience_changes,
        enqueue_flow_sends,
    )
    from shopfunnel.webhooks.signing import (
        SignatureError,
        verify_signature,
    )

__all__ = [
    "Adjusted",
    "Audience",
    "BayesianResult",
    "BetaGeoModel",
    "CheckoutFailure",
    "ConfigError",
    "ConversionDrop",
    "DiagnoseSettings",
    "Diagnosis",
    "Draw",
    "ExperimentReport",
    "Flow",
    "FrequentistResult",
    "FunnelResult",
    "GammaGammaModel",
    "HoldoutLift",
    "IncidentSettings",
    "InputError",
    "Journey",
    "LevelShiftSettings",
    "LoadResult",
    "Mean",
    "Metric",
    "Model",
    "NoContactsError",
    "Offer",
    "OfferResult",
    "PaymentOutage",
    "PlantedExperiment",
    "ProgramsOverview",
    "Proportion",
    "Ratio",
    "ReferralRule",
    "Reject",
    "RetentionSummary",
    "ShopfunnelError",
    "SignatureError",
    "SparkEngine",
    "SparkEvents",
    "SrmResult",
    "Stage",
    "StagePlacement",
    "Step",
    "Store",
    "StoreError",
    "Tier",
    "TrafficSpike",
    "UnknownNameError",
    "ValidationError",
    "WhatIf",
    "abandoned_carts",
    "activity_retention",
    "analyze_experiment",
    "assign_variant",
    "audience_members",
    "audience_persons",
    "bayesian_test",
    "build_report",
    "cdnow_orders",
    "code_status",
    "cohort_matrix",
    "cohort_retention",
    "compare_arms",
    "create_app",
    "create_audience",
    "create_offer",
    "customer_value",
    "deliver_due",
    "diagnose",
    "draw_giveaway",
    "due_now",
    "enqueue_audience_changes",
    "enqueue_flow_sends",
    "erase_person",
    "evaluate_recommendations",
    "events_for_sessions",
    "export_audience",
    "find_incidents",
    "find_level_shifts",
    "free_shipping",
    "funnel",
    "generate_sample",
    "holdout_check",
    "holdout_lift",
    "in_holdout",
    "issue_offer_codes",
    "issue_referral_codes",
    "lapsed_customers",
    "list_experiments",
    "load_benchmarks",
    "load_cdnow",
    "load_dataset",
    "load_model",
    "load_playbook",
    "load_sample",
    "local_spark_session",
    "near_threshold",
    "offer_result",
    "orders_per_customer",
    "parse_tiers",
    "pay_referrals",
    "person_journey",
    "place_persons",
    "placement",
    "placements",
    "preview_list",
    "programs_overview",
    "qualifying_persons",
    "quantile_scores",
    "recommend_for_persons",
    "referral_ledger",
    "refresh_audience",
    "related_items",
    "repeat_purchase_rate",
    "retention_summary",
    "rfm_group_summary",
    "rfm_table",
    "run_flow",
    "run_scheduled",
    "srm_check",
    "stage_flow",
    "stage_summary",
    "stage_transitions",
    "store_activity_retention",
    "summary_from_orders",
    "tiered_discount",
    "time_between_orders",
    "time_between_orders_distribution",
    "verify_draw",
    "verify_signature",
    "welch_t_test",
    "write_report",
    "write_sample",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'shopfunnel' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
