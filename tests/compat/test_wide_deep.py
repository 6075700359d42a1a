"""The Wide&Deep script (``scripts/wide_deep.py``) through run.sh: two tables read one feature
(two FeatureSpecs named ``sparse_feature``), in FeatureSpec and modify-graph modes, HBM and DDR,
with admission and eviction (USE_FAAE), on 1 and 2 ranks.

Runs (4 launches): 1 rank base, modify-graph in DDR, FAAE; 2 ranks base.
"""
from tests.compat.harness import assert_loss_falls, assert_same_numbers

SCRIPT = "wide_deep"


def test_two_tables_read_one_feature(runs, criteo_data):
    base = runs(SCRIPT, 1, criteo_data)
    assert_loss_falls(base)
    # both tables saw every key of the training rows they read (16 steps of 128 from 2,048 rows)
    assert base["table_sizes"]["wide"] == base["table_sizes"]["deep"] > 0
    assert 0.55 < base["eval"]["auc_0"] < 1.0, base["eval"]


def test_modify_graph_in_ddr_gives_the_same_numbers(runs, criteo_data):
    base = runs(SCRIPT, 1, criteo_data)
    other = runs(SCRIPT, 1, criteo_data, USE_MODIFY_GRAPH="1", CACHE_MODE="DDR")
    assert other["table_sizes"] == base["table_sizes"]
    assert_same_numbers(base, other, rtol=1e-5, atol=1e-6)


def test_admission_keeps_rare_keys_out(runs, criteo_data):
    base = runs(SCRIPT, 1, criteo_data)
    faae = runs(SCRIPT, 1, criteo_data, USE_FAAE="1")
    assert_loss_falls(faae)
    # access_threshold=2: keys seen once get no row, so both tables hold fewer keys than without
    assert 0 < faae["table_sizes"]["deep"] < base["table_sizes"]["deep"]


def test_two_ranks_match_one_rank(runs, criteo_data):
    one = runs(SCRIPT, 1, criteo_data)
    two = runs(SCRIPT, 2, criteo_data)
    assert sum(r["table_sizes"]["deep"] for r in two["ranks"]) == one["table_sizes"]["deep"]
    assert_same_numbers(one, two, rtol=2e-3, atol=1e-5)
