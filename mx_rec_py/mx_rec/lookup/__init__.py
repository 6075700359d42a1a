"""TF graph glue: turns ids (tensors or FeatureSpecs) into embeddings with gradients on the table."""
