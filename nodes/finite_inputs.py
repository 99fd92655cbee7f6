"""One NaN/inf check for every UniStyle node, before it runs.

ComfyUI's min/max validation lets NaN through (every comparison with NaN is false), and a NaN strength,
image or latent silently becomes a black result. `checked(node)` returns a subclass of a V3 node whose
`execute` first passes every FLOAT input and every IMAGE, MASK and LATENT tensor input through
`guards.finite`, so the refusal names the node input. Which inputs are checked is read from the node's own
schema (`define_schema()`), so a new node or input is covered without a line of its own. Only `execute`
is wrapped: the schema, `fingerprint_inputs`, `check_lazy_status` and `validate_inputs` (caching and lazy
evaluation) are the node's own, and an input that lazy evaluation left unevaluated (None) is skipped.
"""
import functools
import inspect

from .guards import finite

CHECKED_TYPES = ("FLOAT", "IMAGE", "MASK", "LATENT")


def checked(node):
    """`node` with its inputs of CHECKED_TYPES checked for NaN/inf before `execute` (same node id and schema)."""
    execute = node.execute.__func__
    names = list(inspect.signature(execute).parameters)[1:]  # after cls
    types = {}

    def check(cls, args, kwargs):
        if not types:
            types.update({i.id: i.get_io_type() for i in cls.define_schema().inputs})
        for name, value in [*zip(names, args), *kwargs.items()]:
            if types.get(name) in CHECKED_TYPES:
                check_value(value, name, types[name])

    if inspect.iscoroutinefunction(execute):
        @functools.wraps(execute)
        async def run(cls, *args, **kwargs):
            check(cls, args, kwargs)
            return await execute(cls, *args, **kwargs)
    else:
        @functools.wraps(execute)
        def run(cls, *args, **kwargs):
            check(cls, args, kwargs)
            return execute(cls, *args, **kwargs)

    return type(node.__name__, (node,), {"execute": classmethod(run), "__module__": node.__module__,
                                         "__qualname__": node.__qualname__, "__doc__": node.__doc__})


def check_value(value, name, io_type):
    """Refuse NaN/inf in one input value (a list when the node takes its inputs as lists)."""
    if value is None:
        return
    if isinstance(value, list):
        for item in value:
            check_value(item, name, io_type)
    elif io_type == "LATENT" and isinstance(value, dict):
        for key, tensor in value.items():
            finite(tensor, name if key == "samples" else f"{name} ({key})")
    else:
        finite(value, name)
