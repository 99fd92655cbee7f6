"""UniStyle: DreamStyle, HiCAST and StyleMotif as ComfyUI nodes.

ComfyUI imports this folder as a custom-node pack and awaits comfy_entrypoint() (V3 node API). The
pack exports no NODE_CLASS_MAPPINGS on purpose: a pack exporting both gets only the V1 mappings.
Nothing is imported at module load, so tools that import the folder as a package (pytest collects
it as the rootdir package) need no ComfyUI.
"""


async def comfy_entrypoint():
    from comfy_api.latest import ComfyExtension

    from .nodes import all_nodes

    class UniStyleExtension(ComfyExtension):
        async def get_node_list(self):
            return all_nodes()

    return UniStyleExtension()
