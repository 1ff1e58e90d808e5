"""The public API is what `shopfunnel/__init__.py` re-exports: sorted, complete, importable."""

from __future__ import annotations

import shopfunnel


def test_all_is_sorted_and_unique() -> None:
    assert shopfunnel.__all__ == sorted(set(shopfunnel.__all__))


def test_every_public_name_is_importable() -> None:
    for name in shopfunnel.__all__:
        assert getattr(shopfunnel, name) is not None, name


def test_every_error_derives_from_the_one_root() -> None:
    errors = [getattr(shopfunnel, n) for n in shopfunnel.__all__ if n.endswith("Error")]
    assert errors and all(issubclass(e, shopfunnel.ShopfunnelError) for e in errors)


# The public API, written out: adding or removing a name is a decision, made here too.
PUBLIC = [
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


def test_the_public_api_is_exactly_this_list() -> None:
    assert sorted(PUBLIC) == shopfunnel.__all__


def test_the_lazy_table_and_the_type_checking_imports_name_the_same_modules() -> None:
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(shopfunnel))
    typed = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for imp in node.body:
                typed.update({a.name: imp.module for a in imp.names})
    lazy = dict(shopfunnel._EXPORTS)
    assert typed == lazy
    assert set(lazy) | {"Step", "funnel"} == set(shopfunnel.__all__)
