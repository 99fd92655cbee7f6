"""The input checks ComfyUI's own validation leaves out, for every UniStyle node, before it runs.

- NaN/inf: ComfyUI's min/max validation lets NaN through (every comparison with NaN is false), and a NaN
  strength, image or latent silently becomes a black result. Every FLOAT input and every IMAGE, MASK and
  LATENT tensor input goes through `guards.finite`.
- COMBO choices: ComfyUI (0.3.52 and 0.3.75) checks a combo value against its list only for V1 nodes; a V3
  node's combo arrives unchecked, so an API client can send any file name to a model loader. Each COMBO
  value must be one of the options the node's schema lists at run time.

`checked(node)` returns a subclass of a V3 node whose `execute` runs these checks first, so the refusal
names the node input. Which inputs are checked is read from the node's own schema (`define_schema()`), so
a new node or input is covered without a line of its own. Only `execute` is wrapped: the schema,
`fingerprint_inputs`, `check_lazy_status` and `validate_inputs` (caching and lazy evaluation) are the
node's own, and an input that lazy evaluation left unevaluated (None) is skipped.
"""
import functools
import inspect

from .guards import NodeInputError, finite

CHECKED_TYPES = ("FLOAT", "IMAGE", "MASK", "LATENT", "COMBO")


def checked(node):
    """`node` with its inputs of CHECKED_TYPES checked before `execute` (same node id and schema)."""
    execute = node.execute.__func__
    names = list(inspect.signature(execute).parameters)[1:]  # after cls

    def check(cls, args, kwargs):
        inputs = {i.id: i for i in cls.define_schema().inputs}  # combo options as listed now
        for name, value in [*zip(names, args), *kwargs.items()]:
            spec = inputs.get(name)
            if spec is not None and spec.get_io_type() in CHECKED_TYPES:
                check_value(value, name, spec.get_io_type(), getattr(spec, "options", None))

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


def check_value(value, name, io_type, options=None):
    """Refuse NaN/inf or a combo value that is not a choice (`value` is a list when the node takes lists)."""
    if value is None:
        return
    if isinstance(value, list):
        for item in value:
            check_value(item, name, io_type, options)
    elif io_type == "COMBO":
        if options is not None and value not in options:
            shown = ", ".join(map(repr, options[:8])) + (", ..." if len(options) > 8 else "")
            raise NodeInputError(f"{name}: {value!r} is not one of the choices ({shown or 'none installed'})")
    elif io_type == "LATENT" and isinstance(value, dict):
        for key, tensor in value.items():
            finite(tensor, name if key == "samples" else f"{name} ({key})")
    else:
        finite(value, name)
