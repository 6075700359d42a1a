"""Hash optimizers (Rec SDK's ``mx_rec.optimizers``): lazy sparse updates of table rows, with slots kept
row for row beside the table. One module an optimizer (adagrad, ftrl, ftrl_t, gradient_descent,
lazy_adam, momentum and the ``*_by_addr`` ones); ``base.CustomizedOptimizer`` is the base class
users subclass for their own."""
