"""ComfyUI glue: one module per family, each exporting NODES (a list of io.ComfyNode classes)."""
import importlib

FAMILY_MODULES = ("dreamstyle", "dreamstyle_data", "dreamstyle_training", "hicast", "stylemotif")


def all_nodes():
    nodes = []
    for name in FAMILY_MODULES:
        try:
            module = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{name}":
                continue  # that family has no nodes yet
            raise
        nodes.extend(module.NODES)
    return nodes
