"""``all2all_gradients_op``: how the gradients of one key from several ranks combine.

Small strategy classes (in the manner of Horovod's ``compression.py``), one per value Rec SDK's
``create_table(all2all_gradients_op=...)`` accepts; the table's config picks one once
(``TableConfig.gradient_reduction``) and the lookup asks it, instead of comparing strings:

    sum_gradients                      gradients of a key from every rank are summed (on its owner for a
                                       sharded table; all-reduced with "sum" for a replicated one)
    sum_gradients_and_div_by_ranksize  the same divided by the rank count: the exchanged rows' gradient is
                                       scaled by 1 / ranks on its way back; replicated: all-reduced "mean"

Example:
    >>> reduction = gradient_reduction("sum_gradients_and_div_by_ranksize")
    >>> reduction.replicated_reduction
    'mean'
"""
from typing import Dict

import tensorflow as tf

from mx_rec.communication import collectives
from mx_rec.constants.constants import All2allGradientsOp


class GradientReduction:
    """Base strategy: the gradient of rows a lookup gathered from other ranks.

    Attributes:
        name: the ``all2all_gradients_op`` string. replicated_reduction: ``collectives.allreduce``'s
            reduction of a replicated (``is_dp``) table's row gradients.
    """

    name = ""
    replicated_reduction = "sum"

    def exchanged_rows(self, rows: tf.Tensor, ranks: int) -> tf.Tensor:
        """Rows value_dtype [S, dim] back from their owners (all-to-all): the rows, with this strategy's gradient."""
        return rows

    def replicated_rows(self, rows: tf.Tensor) -> tf.Tensor:
        """Rows value_dtype [U_all, dim] of a replicated table: identity forward, their gradient combined
        over ranks with ``replicated_reduction`` backward."""
        return collectives.allreduce_gradient(rows, self.replicated_reduction)


class SumGradients(GradientReduction):
    """``sum_gradients``: a key's gradients from all ranks add up (the all-to-all's gradient already sums)."""

    name = All2allGradientsOp.SUM_GRADIENTS.value


class SumGradientsAndDivByRankSize(GradientReduction):
    """``sum_gradients_and_div_by_ranksize``: the sum divided by the rank count."""

    name = All2allGradientsOp.SUM_GRADIENTS_AND_DIV_BY_RANKSIZE.value
    replicated_reduction = "mean"

    def exchanged_rows(self, rows: tf.Tensor, ranks: int) -> tf.Tensor:
        return collectives.scale_gradient(rows, 1.0 / ranks)


GRADIENT_REDUCTIONS: Dict[str, GradientReduction] = {
    cls.name: cls() for cls in (SumGradients, SumGradientsAndDivByRankSize)}


def gradient_reduction(name: str) -> GradientReduction:
    """The strategy of ``all2all_gradients_op`` string ``name``.

    Raises:
        ValueError: ``name`` is not one of ``GRADIENT_REDUCTIONS``, naming the accepted values.
    """
    if name not in list(GRADIENT_REDUCTIONS):
        raise ValueError(f"all2all_gradients_op must be one of {list(GRADIENT_REDUCTIONS)}, got {name!r}")
    return GRADIENT_REDUCTIONS[name]
