"""Installs mx_rec from mx_rec_py/ (import name: mx_rec)."""
from setuptools import find_packages, setup

setup(
    name="mx_rec",
    version="0.1.0",
    description="TensorFlow SDK for recommender models with embedding tables larger than one device",
    package_dir={"": "mx_rec_py"},
    packages=find_packages("mx_rec_py"),
    python_requires=">=3.11",
)
