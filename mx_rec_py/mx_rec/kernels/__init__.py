"""mx_rec's compiled TF ops: the fused lazy-Adam row update and the deterministic segment sum.

The C++ sources (``cc/``) are compiled against the installed TensorFlow by ``tools/bootstrap.sh``
(``python -m mx_rec.kernels.build``), as Horovod is, into a cache keyed by the sources, the
compiler and TensorFlow's version. ``mx_rec.kernels.ops`` runs them where they apply (CPU
variables) and TF's own ops otherwise, with the same numbers; ``MXREC_FUSED_KERNELS=0`` turns them
off.
"""
