"""The MMoE census script (``scripts/mmoe_census.py``) through run.sh: FeatureSpec and modify-graph
modes, static and dynamic shapes, multi-lookup with two FeatureSpecs of one name, 1 and 2 ranks.

Runs (about 6 launches): 1 rank base, modify-graph + static shapes, multi-lookup in both modes;
2 ranks FeatureSpec, and modify-graph with multi-lookup.
"""
from tests.compat.harness import assert_loss_falls, assert_same_numbers

SCRIPT = "mmoe_census"
SAME_RANKS = dict(rtol=1e-5, atol=1e-6)     # same rank count, another mode: the same arithmetic
OTHER_RANKS = dict(rtol=2e-3, atol=1e-5)    # 1 vs 2 ranks: sums taken in another order


def test_feature_spec_mode_trains_and_evaluates(runs, census_data):
    base = runs(SCRIPT, 1, census_data)
    assert_loss_falls(base)
    assert base["eval"]["samples"] == 80
    assert base["eval"]["auc_1"] > 0.7, base["eval"]   # marital status is easy on census


def test_modify_graph_and_static_shapes_give_the_same_numbers(runs, census_data):
    base = runs(SCRIPT, 1, census_data)
    other = runs(SCRIPT, 1, census_data, USE_MODIFY_GRAPH="1", USE_DYNAMIC="0")
    assert_same_numbers(base, other, **SAME_RANKS)


def test_multi_lookup_with_repeated_feature_spec_names(runs, census_data):
    feature_spec = runs(SCRIPT, 1, census_data, USE_MULTI_LOOKUP="1")
    modify_graph = runs(SCRIPT, 1, census_data, USE_MULTI_LOOKUP="1", USE_MODIFY_GRAPH="1")
    assert_loss_falls(feature_spec)
    assert_same_numbers(feature_spec, modify_graph, **SAME_RANKS)
    base = runs(SCRIPT, 1, census_data)
    assert feature_spec["losses"][1:] != base["losses"][1:]   # the second lookup is really in the model


def test_two_ranks_match_one_rank(runs, census_data):
    one = runs(SCRIPT, 1, census_data)
    two = runs(SCRIPT, 2, census_data)
    assert_loss_falls(two)
    assert_same_numbers(one, two, **OTHER_RANKS)
    multi_one = runs(SCRIPT, 1, census_data, USE_MULTI_LOOKUP="1")
    multi_two = runs(SCRIPT, 2, census_data, USE_MULTI_LOOKUP="1", USE_MODIFY_GRAPH="1")
    assert_same_numbers(multi_one, multi_two, **OTHER_RANKS)
