"""ComfyUI glue: one module per family, each exporting NODES (a list of io.ComfyNode classes).

Families load on their own: when a family's module fails to import because a third-party package is
missing, that family is left out with one log line naming the package and the install command, and
the other families load. A node class that needs an optional backend lists the packages it can use
in BACKENDS; it is left out (one line) when none of them imports.
"""
import importlib
import logging

from . import backends

FAMILY_MODULES = ("dreamstyle", "dreamstyle_data", "dreamstyle_training", "hicast", "stylemotif")
log = logging.getLogger("unistyle")


def _import_family(name):
    """The family module, or None after logging why it cannot load."""
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as e:
        if e.name == f"{__name__}.{name}":
            return None  # that family has no nodes yet
        package = (e.name or "").split(".")[0]
        if package and package != __name__.split(".")[0]:
            log.warning(backends.missing_line(f"the {name} nodes", package, e))
            return None
        log.exception("UniStyle: the %s nodes not loaded: their module failed to import", name)
    except Exception:  # a bug in one family must not take the others down
        log.exception("UniStyle: the %s nodes not loaded: their module failed to import", name)
    return None


def _usable(node):
    options = getattr(node, "BACKENDS", ())
    errors = {package: backends.missing(package) for package in options}
    if options and all(errors.values()):
        package = options[0]
        what = f"node {node.__name__}" + (f" (needs one of {', '.join(options)})" if len(options) > 1 else "")
        log.warning(backends.missing_line(what, package, errors[package]))
        return False
    return True


def all_nodes():
    """Every family's nodes, each checking what ComfyUI's validation lets through (nodes/input_checks.py)."""
    from .input_checks import checked
    backends.check_opencv()
    nodes = []
    for name in FAMILY_MODULES:
        module = _import_family(name)
        if module is not None:
            nodes.extend(checked(node) for node in module.NODES if _usable(node))
    return nodes
