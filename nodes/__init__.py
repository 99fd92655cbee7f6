"""ComfyUI glue: one module per family, each exporting NODES (a list of io.ComfyNode classes)."""
import importlib

FAMILY_MODULES = ("dreamstyle", "dreamstyle_data", "dreamstyle_training", "hicast", "stylemotif")


def all_nodes():
    """Every family's nodes, each refusing NaN/inf in its numeric and tensor inputs (nodes/finite_inputs.py)."""
    from .finite_inputs import checked
    nodes = []
    for name in FAMILY_MODULES:
        try:
            module = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{name}":
                continue  # that family has no nodes yet
            raise
        nodes.extend(checked(node) for node in module.NODES)
    return nodes
