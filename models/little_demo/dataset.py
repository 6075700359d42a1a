"""Synthetic click data with a planted logistic ground truth, fed through ``tf.data``.

Each sample has:
    user_id        int64 [B]     Zipf-popular over ``n_users`` ids (popularity rank -> id by a fixed permutation)
    item_id        int64 [B]     Zipf-popular over ``n_items`` ids
    item_tags      int64 [B, T]  the item's 1..T tag keys (``TAG_KEY_OFFSET + tag``), padded with -1
    dense_feature  float32 [B, D] standard normal
    label          float32 [B]   Bernoulli(sigmoid(true logit))

    true logit = intercept + user_bias[user] + item_bias[item] + sum(tag_bias[tags]) + dense . w

so the best achievable AUC is known (``SyntheticWorld.true_prob``). Tag keys live in the item
table beside the item keys (multi-lookup), hence the offset that keeps the two key ranges apart.
"""
from typing import Dict, Iterator, List

import numpy as np
import tensorflow as tf

from mx_rec.core.asc.helper import FeatureSpec, get_asc_insert_func
from mx_rec.data.zipf import zipf_cdf

from config import DemoConfig

TAG_KEY_OFFSET = 10_000_000
PADDING_KEY = -1
SPARSE_FEATURES = ("user_id", "item_id", "item_tags")


class SyntheticWorld:
    """The ground truth of one seed: id popularity, per-id biases, item tags and dense weights.

    Args:
        cfg: the demo config (ids, widths, Zipf exponents).
        seed: fixes the world; batch streams take their own seeds.
    """

    def __init__(self, cfg: DemoConfig, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.cfg = cfg
        self._user_cdf = zipf_cdf(cfg.n_users, cfg.user_zipf)
        self._item_cdf = zipf_cdf(cfg.n_items, cfg.item_zipf)
        self._user_of_rank = rng.permutation(cfg.n_users).astype(np.int64)
        self._item_of_rank = rng.permutation(cfg.n_items).astype(np.int64)
        self.user_bias = rng.normal(0.0, 1.0, cfg.n_users)
        self.item_bias = rng.normal(0.0, 0.8, cfg.n_items)
        self.tag_bias = rng.normal(0.0, 0.5, cfg.n_tags)
        self.dense_w = rng.normal(0.0, 1.2 / np.sqrt(cfg.dense_dim), cfg.dense_dim)
        self.intercept = -0.3
        n_valid = rng.integers(1, cfg.tags_per_item + 1, cfg.n_items)
        tags = rng.integers(0, cfg.n_tags, (cfg.n_items, cfg.tags_per_item)) + TAG_KEY_OFFSET
        tags[np.arange(cfg.tags_per_item)[None, :] >= n_valid[:, None]] = PADDING_KEY
        self.item_tags = tags.astype(np.int64)

    def sample(self, rng: np.random.Generator, batch_size: int) -> Dict[str, np.ndarray]:
        """One batch (dict of numpy arrays; dtypes and shapes as in the module docstring)."""
        users = self._user_of_rank[np.searchsorted(self._user_cdf, rng.random(batch_size), side="right")]
        items = self._item_of_rank[np.searchsorted(self._item_cdf, rng.random(batch_size), side="right")]
        dense = rng.standard_normal((batch_size, self.cfg.dense_dim)).astype(np.float32)
        batch = {"user_id": users, "item_id": items, "item_tags": self.item_tags[items], "dense_feature": dense}
        labels = rng.random(batch_size) < self.true_prob(batch)
        batch["label"] = labels.astype(np.float32)
        return batch

    def true_prob(self, batch: Dict[str, np.ndarray]) -> np.ndarray:
        """The planted click probability of each sample: float64 [B]."""
        tags = batch["item_tags"]
        tag_ids = np.where(tags == PADDING_KEY, 0, tags - TAG_KEY_OFFSET)
        tag_term = np.where(tags == PADDING_KEY, 0.0, self.tag_bias[tag_ids]).sum(axis=1)
        logit = (self.intercept + self.user_bias[batch["user_id"]] + self.item_bias[batch["item_id"]]
                 + tag_term + batch["dense_feature"].astype(np.float64) @ self.dense_w)
        return 1.0 / (1.0 + np.exp(-logit))

    def batches(self, seed: int, num_batches: int, batch_size: int) -> Iterator[Dict[str, np.ndarray]]:
        """``num_batches`` batches from a stream fixed by ``seed``."""
        rng = np.random.default_rng(seed)
        for _ in range(num_batches):
            yield self.sample(rng, batch_size)


def make_feature_specs(cfg: DemoConfig) -> List[FeatureSpec]:
    """FeatureSpecs of the three sparse features; item_id and item_tags share the item table."""
    return [
        FeatureSpec("user_id", table_name="user_table", batch_size=cfg.batch_size),
        FeatureSpec("item_id", table_name="item_table", batch_size=cfg.batch_size),
        FeatureSpec("item_tags", table_name="item_table", batch_size=cfg.batch_size * cfg.tags_per_item),
    ]


def make_dataset(world: SyntheticWorld, cfg: DemoConfig, specs: List[FeatureSpec], seed: int,
                 num_batches: int, is_training: bool) -> tf.data.Dataset:
    """A dataset of ``num_batches`` batches (dicts as in the module docstring), mapped for mx_rec.

    The batches come from ``world.batches(seed, ...)`` through ``from_generator``, are mapped with
    ``get_asc_insert_func(tgt_key_specs=specs, is_training=is_training)`` and prefetched.
    """
    b, t, d = cfg.batch_size, cfg.tags_per_item, cfg.dense_dim
    signature = {
        "user_id": tf.TensorSpec([b], tf.int64),
        "item_id": tf.TensorSpec([b], tf.int64),
        "item_tags": tf.TensorSpec([b, t], tf.int64),
        "dense_feature": tf.TensorSpec([b, d], tf.float32),
        "label": tf.TensorSpec([b], tf.float32),
    }
    dataset = tf.data.Dataset.from_generator(
        lambda: world.batches(seed, num_batches, b), output_signature=signature)
    dataset = dataset.map(get_asc_insert_func(tgt_key_specs=specs, is_training=is_training))
    return dataset.prefetch(cfg.prefetch)
