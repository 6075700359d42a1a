"""The DLRM script (``scripts/dlrm.py``) through run.sh: a user's CustomizedOptimizer subclass
(weight-decayed SGD), a VarianceScaling table initializer in every cache mode, and Rec SDK's
dynamic-expansion flow with a by-address SGD inside NPULossScaleOptimizer; multi-lookup; 1 and 2 ranks.

Runs (4 launches): 1 rank base (HBM), dynamic expansion, multi-lookup in DDR; 2 ranks with
dynamic expansion in modify-graph mode.
"""
from tests.compat.harness import assert_loss_falls, assert_same_numbers

SCRIPT = "dlrm"


def test_customized_optimizer_trains(runs, criteo_data):
    base = runs(SCRIPT, 1, criteo_data)
    assert_loss_falls(base)
    assert base["table_size"] > 0


def test_by_address_optimizer_in_a_loss_scale_wrapper_matches(runs, criteo_data):
    """SGD by address with weight decay applies the same rule as the script's own optimizer; the
    loss scale (a power of two) is exact, so both runs give the same numbers."""
    base = runs(SCRIPT, 1, criteo_data)
    expansion = runs(SCRIPT, 1, criteo_data, USE_DYNAMIC_EXPANSION="1")
    assert expansion["table_size"] == base["table_size"]
    assert_same_numbers(base, expansion, rtol=1e-4, atol=1e-6)


def test_multi_lookup_in_ddr(runs, criteo_data):
    multi = runs(SCRIPT, 1, criteo_data, USE_MULTI_LOOKUP="1", CACHE_MODE="DDR")
    assert_loss_falls(multi)
    base = runs(SCRIPT, 1, criteo_data)
    assert multi["table_size"] == base["table_size"]


def test_two_ranks_with_dynamic_expansion_match_one_rank(runs, criteo_data):
    one = runs(SCRIPT, 1, criteo_data, USE_DYNAMIC_EXPANSION="1")
    two = runs(SCRIPT, 2, criteo_data, USE_DYNAMIC_EXPANSION="1", USE_MODIFY_GRAPH="1")
    assert sum(r["table_size"] for r in two["ranks"]) == one["table_size"]
    assert_same_numbers(one, two, rtol=2e-3, atol=1e-5)
