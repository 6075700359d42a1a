"""The policy strategy classes give the numbers their strings name: ``all2all_gradients_op``
(``communication.gradient_reduction``) and ``APPLY_GRADIENTS_STRATEGY`` (``optimizers.strategy``)."""
import numpy as np
import pytest
import tensorflow as tf

from mx_rec.communication.gradient_reduction import (GRADIENT_REDUCTIONS, SumGradients, SumGradientsAndDivByRankSize,
                                                     gradient_reduction)
from mx_rec.optimizers.strategy import APPLY_STRATEGIES, DirectApply, SumSameIdGradients, apply_strategy
from mx_rec.tables.config import make_table_config

ROWS = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], np.float32)
IDX = np.array([0, 2, 2, 1, 0])
WEIGHTS = np.arange(10, dtype=np.float32).reshape(5, 2) + 1.0
BASE_GRAD = np.zeros_like(ROWS)
np.add.at(BASE_GRAD, IDX, WEIGHTS)  # d sum(w * rows[idx]) / d rows


@pytest.mark.parametrize("name, cls", [("sum_gradients", SumGradients),
                                       ("sum_gradients_and_div_by_ranksize", SumGradientsAndDivByRankSize)])
def test_the_table_config_picks_its_reduction_from_the_string(name, cls):
    config = make_table_config(tf.int64, 2, "t", tf.compat.v1.zeros_initializer(), all2all_gradients_op=name)
    assert type(config.gradient_reduction) is cls and config.gradient_reduction is gradient_reduction(name)
    assert list(GRADIENT_REDUCTIONS) == ["sum_gradients", "sum_gradients_and_div_by_ranksize"]


def test_an_unknown_reduction_names_the_accepted_ones():
    with pytest.raises(ValueError, match=r"all2all_gradients_op must be one of \['sum_gradients', 'sum_gradients_and"):
        gradient_reduction("mean")
    with pytest.raises(ValueError, match=r"table 't': all2all_gradients_op must be one of .*got 'mean'"):
        make_table_config(tf.int64, 2, "t", tf.compat.v1.zeros_initializer(), all2all_gradients_op="mean")


@pytest.mark.parametrize("ranks", [1, 4])
def test_exchanged_rows_gradient_is_summed_or_divided_by_the_rank_count(graph, ranks):
    rows = tf.constant(ROWS)
    summed = SumGradients().exchanged_rows(rows, ranks)
    divided = SumGradientsAndDivByRankSize().exchanged_rows(rows, ranks)
    assert summed is rows  # sum_gradients adds no op: the all-to-all's own gradient sums
    grads = []
    for out in (summed, divided):
        gathered = tf.reduce_sum(tf.gather(out, IDX) * WEIGHTS)  # IndexedSlices reach the custom gradient
        dense = tf.reduce_sum(out * BASE_GRAD)  # a dense gradient does
        grads += [tf.convert_to_tensor(tf.gradients(gathered, rows)[0]), tf.gradients(dense, rows)[0]]
    with tf.compat.v1.Session() as sess:
        got = sess.run(grads)
    np.testing.assert_array_equal(got[0], BASE_GRAD)
    np.testing.assert_array_equal(got[1], BASE_GRAD)
    np.testing.assert_array_equal(got[2], BASE_GRAD * np.float32(1.0 / ranks))
    np.testing.assert_array_equal(got[3], BASE_GRAD * np.float32(1.0 / ranks))


def test_replicated_rows_are_all_reduced_with_sum_or_mean(graph):
    assert (SumGradients.replicated_reduction, SumGradientsAndDivByRankSize.replicated_reduction) == ("sum", "mean")
    rows = tf.constant(ROWS)
    grads = [tf.gradients(tf.reduce_sum(r.replicated_rows(rows) * BASE_GRAD), rows)[0]
             for r in (SumGradients(), SumGradientsAndDivByRankSize())]
    with tf.compat.v1.Session() as sess:
        summed, mean = sess.run(grads)
    np.testing.assert_array_equal(summed, BASE_GRAD)  # one rank: the sum and the mean are its own
    np.testing.assert_array_equal(mean, BASE_GRAD)


@pytest.mark.parametrize("value, cls", [(None, SumSameIdGradients), ("direct_apply", DirectApply),
                                        ("sum_same_id_gradients_and_apply", SumSameIdGradients)])
def test_apply_strategy_is_chosen_from_the_environment(monkeypatch, value, cls):
    if value is None:
        monkeypatch.delenv("APPLY_GRADIENTS_STRATEGY", raising=False)
    else:
        monkeypatch.setenv("APPLY_GRADIENTS_STRATEGY", value)
    assert type(apply_strategy()) is cls and apply_strategy() is APPLY_STRATEGIES[cls.member]


def _applied(strategy, indices, lookups):
    """Rows [3, 1] after ``strategy`` applies values 1..N at ``indices`` with an update that depends on the
    row it starts from (row <- row / 2 + value), so summing first and applying in turn differ."""
    var = tf.Variable(np.full((3, 1), 8.0, np.float32))

    def apply_unique(values, idx):
        return var.scatter_update(tf.IndexedSlices(tf.gather(var, idx) * 0.5 + values, idx))

    values = tf.constant(np.arange(1, len(indices) + 1, dtype=np.float32)[:, None])
    update = strategy.apply(apply_unique, values, tf.constant(indices, tf.int64), lookups)
    with tf.compat.v1.Session() as sess:
        sess.run(var.initializer)
        sess.run(update)
        return sess.run(var)[:, 0].tolist()


def test_apply_strategies_give_the_numbers_their_names_say(graph):
    # indices [0, 1, 0, 2] of two lookups; values 1, 2, 3, 4
    assert _applied(SumSameIdGradients(), [0, 1, 0, 2], 2) == [8 / 2 + (1 + 3), 8 / 2 + 2, 8 / 2 + 4]
    assert _applied(DirectApply(), [0, 1, 0, 2], 2) == [(8 / 2 + 1) / 2 + 3, 8 / 2 + 2, 8 / 2 + 4]
    assert _applied(DirectApply(), [2, 0], 1) == [8 / 2 + 2, 8.0, 8 / 2 + 1]  # one lookup: applied as it comes
