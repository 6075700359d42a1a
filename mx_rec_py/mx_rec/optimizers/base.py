"""``CustomizedOptimizer``: the base of every hash optimizer, ours and users' own (Rec SDK's name).

A hash optimizer is a ``tf.compat.v1.train.Optimizer`` that updates table variables only, with the
IndexedSlices gradients lookups produce, touching only the rows looked up, and whose slots live row
for row beside the table (so DDR/SSD tiers move them with the rows). Subclass it as Rec SDK's
examples do, the TF optimizer first or second in the bases:

    class SGDWithDecay(tf.compat.v1.train.GradientDescentOptimizer, CustomizedOptimizer):
        def __init__(self, learning_rate, weight_decay, name="SGDWithDecay"):
            self.weight_decay = weight_decay
            super()._get_name(name=name)
            super().__init__(learning_rate=learning_rate, use_locking=False, name=self.unique_name)

        def _apply_sparse_duplicate_indices(self, grad, var):  # grad: IndexedSlices of looked-up rows
            rows = tf.gather(var, grad.indices)
            delta = (grad.values + self.weight_decay * rows) * self._learning_rate_tensor
            return tf.compat.v1.scatter_nd_add(var, grad.indices[:, None], -delta)

        def initialize_slots(self, var, table_instance): return []   # Rec SDK's slot protocol (optional)
        def get_slot_init_values(self): return []

When such a class is defined, the hash-table steps are put around what it implements: in
``__init__`` (registration, so DDR tables made later get its slots), ``compute_gradients``
(multi-lookup merging), ``_create_slots`` (slots registered with the table, growable under dynamic
expansion) and ``_resource_apply_sparse_duplicate_indices`` (slot growth, the gradient strategy,
DDR placement beside the update), which runs whichever sparse update the class implements (see
``mx_rec.optimizers.sparse_apply``). A dense gradient on a table is refused with a clear error.
"""
import functools
import numbers
from collections import defaultdict
from typing import Callable, Dict, List

import tensorflow as tf
from tensorflow.python.ops import resource_variable_ops
from tensorflow.python.training.optimizer import _var_key

from mx_rec.config.initializer import ConfigInitializer
from mx_rec.lookup.merge import build_pending_lookups
from mx_rec.optimizers import slots
from mx_rec.optimizers.sparse_apply import is_framework, sparse_update



def table_of(var) -> "EmbeddingTable":  # noqa: F821
    """The table whose variable is ``var``; TypeError naming the variable otherwise."""
    if ConfigInitializer.is_initialized():
        for table in ConfigInitializer.get_instance().tables.values():
            if table.variable is var:
                return table
    raise TypeError(f"hash optimizers update sparse table variables only; {getattr(var, 'name', var)!r} is not "
                    "one (use a dense optimizer for it, see get_dense_and_sparse_variable())")


def check_learning_rate(learning_rate, name: str, what: str = "learning_rate") -> None:
    """A float in [0, 10], or a tensor, variable or callable (TF evaluates those when applying).

    Raises:
        ValueError / TypeError naming the optimizer and the value.
    """
    if isinstance(learning_rate, numbers.Real) and not isinstance(learning_rate, bool):
        if not 0.0 <= float(learning_rate) <= 10.0:
            raise ValueError(f"{name}: {what}={learning_rate} is outside [0.0, 10.0]")
    elif not (isinstance(learning_rate, (tf.Tensor, tf.Variable)) or callable(learning_rate)):
        raise TypeError(f"{name}: {what} must be a float, a tensor, a variable or a callable, got {learning_rate!r}")


def check_name(name, default: str) -> None:
    """Optimizer names are strings of 1 to 200 characters (Rec SDK's rule)."""
    if not isinstance(name, str) or not 1 <= len(name) <= 200:
        raise ValueError(f"{default}: name must be a string of 1 to 200 characters, got {name!r}")


# --- the steps put around a subclass's own methods -------------------------------------------------

def _init(self, inner, *args, **kwargs):
    inner(*args, **kwargs)
    if ConfigInitializer.is_initialized():
        registered = ConfigInitializer.get_instance().hash_optimizers
        if not any(o is self for o in registered):
            registered.append(self)


def _compute_gradients(self, inner, *args, **kwargs):
    build_pending_lookups()  # multi-lookup: the merged lookups must exist before gradients flow to them
    if len(args) < 3 and "gate_gradients" not in kwargs and _all_resource(args[1] if len(args) > 1
                                                                          else kwargs.get("var_list")):
        kwargs["gate_gradients"] = tf.compat.v1.train.Optimizer.GATE_NONE
    return inner(*args, **kwargs)


def _all_resource(var_list) -> bool:
    """Whether every variable the gradients are for is a resource variable (the trainable ones when
    ``var_list`` is None). TF's default GATE_OP makes each op's input gradients wait for each other so
    that an update cannot overwrite a reference variable another gradient still reads; a resource
    variable is copied on write instead, so without the gating the numbers are the same and the
    backward pass is free to overlap (a matmul's input gradient no longer waits for its weight
    gradient)."""
    variables = tf.compat.v1.trainable_variables() if var_list is None else list(var_list)
    return bool(variables) and all(isinstance(v, resource_variable_ops.BaseResourceVariable) for v in variables)


def _create_slots(self, inner, var_list):
    tables = [table_of(var) for var in var_list]
    initialized = self.__dict__.setdefault("_mxrec_slots_initialized", set())
    for var, table in zip(var_list, tables):
        slots.make_table_slots(self, var, table.slot_dtype, growable=table.expandable)
        if _var_key(var) not in initialized and _overrides(self, "initialize_slots"):
            for info in self.initialize_slots(var, table) or []:  # Rec SDK's protocol: made here, kept by TF
                self.insert_slot(info["slot"], info["named_slot_key"], info["slot_name"])
        initialized.add(_var_key(var))
    inner(var_list)
    for var, table in zip(var_list, tables):
        slots.register_slots(self, var, table)


def _resource_apply_sparse_duplicate_indices(self, inner, grad, handle, indices):
    table = table_of(handle)
    deps = slots.grow_slots(self, handle, grad, table) if table.expandable else []
    with tf.control_dependencies(deps):
        update = sparse_update(self, inner, grad, handle, indices, table)
    if table.lookahead_ops:  # DDR/SSD: the next batch is placed beside the update, not before it
        return tf.group(update, *table.lookahead_ops)
    return update


def _resource_apply_dense(self, grad, handle):
    raise TypeError(f"{self.get_name()}: table variable {handle.name} got a dense gradient; hash optimizers "
                    "need the IndexedSlices gradient that sparse_lookup produces")


def _apply_dense(self, grad, var):
    return _resource_apply_dense(self, grad, var)


def _valid_dtypes(self):
    return {tf.float32, tf.float64, tf.float16, tf.bfloat16}  # compact tables: refused per optimizer later


_AROUND: Dict[str, Callable] = {"__init__": _init, "compute_gradients": _compute_gradients,
                                "_create_slots": _create_slots,
                                "_resource_apply_sparse_duplicate_indices": _resource_apply_sparse_duplicate_indices}
_DEFAULTS: Dict[str, Callable] = {"_resource_apply_dense": _resource_apply_dense, "_apply_dense": _apply_dense,
                                  "_valid_dtypes": _valid_dtypes}


def _around(name: str, fn: Callable) -> Callable:
    """``fn`` with our steps around it; a nested call (a subclass's method calling ``super()``) runs
    ``fn`` alone, so the steps run once, around the outermost call."""
    steps = _AROUND[name]

    @functools.wraps(fn)
    def hook(self, *args, **kwargs):
        active = self.__dict__.setdefault("_mxrec_active_hooks", set())
        if name in active:
            return fn(self, *args, **kwargs)
        active.add(name)
        try:
            return steps(self, functools.partial(fn, self), *args, **kwargs)
        finally:
            active.discard(name)

    hook._mxrec_hooked = True
    hook._mxrec_inner = fn
    return hook


def _overrides(optimizer, name: str) -> bool:
    return getattr(type(optimizer), name) is not getattr(CustomizedOptimizer, name)


class CustomizedOptimizer:
    """Base class of hash optimizers; combine it with a ``tf.compat.v1.train`` optimizer class.

    Attributes:
        slot_init_values: optional dict slot name -> float, the value a new row of each slot starts
            from (else Rec SDK's ``get_slot_init_values()`` or the slot's constant initial value).
        unique_name / base_name: set by ``_get_name``, as in Rec SDK.
    """

    name_counter = defaultdict(int)
    slot_init_values: Dict[str, float] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in _AROUND:  # the class's own method, or the framework's it inherits, gets our steps
            if name in cls.__dict__ and not getattr(cls.__dict__[name], "_mxrec_hooked", False):
                setattr(cls, name, _around(name, cls.__dict__[name]))
            elif not getattr(getattr(cls, name), "_mxrec_hooked", False):
                setattr(cls, name, _around(name, getattr(cls, name)))
        for name, default in _DEFAULTS.items():
            if name not in cls.__dict__ and is_framework(getattr(cls, name)):
                setattr(cls, name, default)

    def _get_name(self, name: str = "CustomizedOptimizer") -> None:
        """Rec SDK's naming: ``unique_name`` is ``name`` with a per-name counter (``name_0``, ``name_1``, ...)."""
        counter = type(self).name_counter
        if name in counter:
            counter[name] += 1
        count = counter[name]
        self.unique_name = f"{name}_{count}"
        self.base_name = name

    __get_name__ = _get_name  # the spelling some Rec SDK optimizers call

    def initialize_slots(self, var, table_instance) -> List[dict]:
        """Rec SDK's slot protocol: make slots of ``var`` now, as dicts {slot, named_slot_key, slot_name};
        each is then handed to ``insert_slot``. Here slots may as well come from ``_create_slots``."""
        return []

    def insert_slot(self, slot, named_slots_key, slot_name: str) -> None:
        """Keep ``slot`` as this optimizer's ``slot_name`` slot of the variable ``named_slots_key`` names."""
        named_slots = self._slot_dict(slot_name)
        if named_slots_key in named_slots and named_slots[named_slots_key] is not slot:
            raise ValueError(f"{self.get_name()}: a {slot_name!r} slot of {named_slots_key[-1]!r} exists already")
        named_slots[named_slots_key] = slot

    def get_slot_init_values(self) -> List[float]:
        """Initial values of the slots, in creation order (Rec SDK's protocol)."""
        return list((self.slot_init_values or {}).values())


HashOptimizerMixin = CustomizedOptimizer  # the former name, for code written against it
