"""Criteo: the Kaggle text converter, the synthetic generator and the id layout they share."""
