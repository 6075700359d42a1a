"""The little demo (``scripts/little_demo.py``) through run.sh: padding keys, a tensor
serving_default_value, eos_map and clear_channel, a set_threshold graph op, and DDR / SSD with a
device cache of 0.4 of the vocabulary, several lookups of one table and evaluation twice.

Runs (5 launches): 1 rank HBM, SSD in modify-graph mode, DDR with static shapes, FAAE; 2 ranks DDR.
All with USE_MULTI_LOOKUP=1 (two lookups of the user table), as Rec SDK's demo runs by default.
"""
from tests.compat.harness import assert_loss_falls, assert_same_numbers

SCRIPT = "little_demo"
MULTI = {"USE_MULTI_LOOKUP": "1"}
HALF = 10  # the script's TRAIN_STEPS // 2: set_threshold and the first evaluation run after this step


def test_hbm_trains_and_evaluates_twice(runs, no_data):
    base = runs(SCRIPT, 1, no_data, **MULTI)
    assert_loss_falls(base)
    assert base["eval"]["samples"] == 2 * 4 * 128   # two evaluations of 4 batches
    assert base["eval"]["auc_0"] > 0.55, base["eval"]


def test_ssd_and_ddr_give_the_numbers_of_hbm(runs, no_data):
    base = runs(SCRIPT, 1, no_data, **MULTI)
    ssd = runs(SCRIPT, 1, no_data, CACHE_MODE="SSD", USE_MODIFY_GRAPH="1", **MULTI)
    ddr = runs(SCRIPT, 1, no_data, CACHE_MODE="DDR", USE_DYNAMIC="0", **MULTI)
    for other in (ssd, ddr):
        assert other["user_sizes"] == base["user_sizes"]
        assert_same_numbers(base, other, rtol=1e-5, atol=1e-6)


def test_set_threshold_op_opens_admission(runs, no_data):
    faae = runs(SCRIPT, 1, no_data, USE_FAAE="1", **MULTI)
    sizes = faae["user_sizes"]
    # admission starts at 1000 sightings: only the hottest keys get rows before the op lowers it to 1
    assert sizes[HALF - 1] * 10 < sizes[-1], sizes
    assert_loss_falls(faae)
    # before admission every lookup returns serving_default_value (tf.ones(dim) * 2, summed over the
    # ids): logits far from 0, a first loss far above the one of rows initialised near zero
    base = runs(SCRIPT, 1, no_data, **MULTI)
    assert faae["losses"][0] > 3 * base["losses"][0], (faae["losses"][0], base["losses"][0])


def test_two_ranks_in_ddr_match_one_rank(runs, no_data):
    one = runs(SCRIPT, 1, no_data, CACHE_MODE="DDR", USE_DYNAMIC="0", **MULTI)
    two = runs(SCRIPT, 2, no_data, CACHE_MODE="DDR", **MULTI)
    assert [sum(s) for s in zip(*(r["user_sizes"] for r in two["ranks"]))] == one["user_sizes"]
    assert_same_numbers(one, two, rtol=2e-3, atol=1e-5)
