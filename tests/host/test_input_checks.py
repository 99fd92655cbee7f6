"""nodes/input_checks.py: every node of the pack refuses NaN/inf in FLOAT, IMAGE, MASK and LATENT inputs and
COMBO values that are not among its choices, before it runs, naming the input, and keeps its schema, caching
and lazy-evaluation hooks."""
import asyncio
import math

import pytest
import torch


@pytest.fixture(scope="module")
def pack(unistyle):
    import importlib
    return importlib.import_module("unistyle_pack.nodes")


@pytest.fixture(scope="module")
def checked(pack):
    import importlib
    return importlib.import_module("unistyle_pack.nodes.input_checks").checked


def bad_value(io_type, bad):
    tensor = torch.rand(2, 4, 4, 3)
    tensor[1, 0, 0, 0] = bad
    return {"FLOAT": bad, "IMAGE": tensor, "MASK": tensor[..., 0], "LATENT": {"samples": tensor}}[io_type]


def test_every_float_image_mask_latent_input_of_every_node_is_checked(pack):
    from unistyle_pack.nodes.guards import NodeInputError
    nodes = pack.all_nodes()
    cases = [(n, i.id, i.get_io_type()) for n in nodes for i in n.define_schema().inputs
             if i.get_io_type() in ("FLOAT", "IMAGE", "MASK", "LATENT")]
    assert len({n for n, _, _ in cases}) >= 20  # most nodes have one: the check is not vacuous
    for node, name, io_type in cases:
        for bad in (math.nan, math.inf):
            with pytest.raises(NodeInputError, match=f"^{name}: .*(NaN|finite)"):
                node.execute(**{name: bad_value(io_type, bad)})


def test_every_combo_input_of_every_node_refuses_a_value_not_listed(pack):
    """ComfyUI does not check a V3 node's combo against its list: an API client could send any file name."""
    from unistyle_pack.nodes.guards import NodeInputError
    combos = [(n, i.id) for n in pack.all_nodes() for i in n.define_schema().inputs if i.get_io_type() == "COMBO"]
    assert len(combos) >= 10
    for node, name in combos:
        for value in ("../../etc/passwd", "/abs/model.safetensors", "not_a_choice"):
            with pytest.raises(NodeInputError, match=f"^{name}: {value!r} is not one of the choices"):
                node.execute(**{name: value})


def test_combo_choices_are_read_when_the_node_runs(checked, tmp_path):
    """A file placed after start-up is a choice at once (the schema lists the folder again), as for ComfyUI."""
    from comfy_api.latest import io
    from unistyle_pack.nodes.guards import NodeInputError

    class Pick(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="UniStyleTestPick", inputs=[io.Combo.Input("name", options=sorted(
                p.name for p in tmp_path.iterdir()))], outputs=[io.String.Output()])

        @classmethod
        def execute(cls, name):
            return io.NodeOutput(name)

    node = checked(Pick)
    with pytest.raises(NodeInputError, match=r"^name: 'a.bvh' is not one of the choices \(none installed\)"):
        node.execute(name="a.bvh")
    (tmp_path / "a.bvh").write_text("x")
    assert node.execute(name="a.bvh").result == ("a.bvh",)


def test_wrapped_nodes_keep_their_id_schema_and_hooks(pack):
    from comfy_api.internal import first_real_override
    originals = {}
    for family in pack.FAMILY_MODULES:
        module = pack._import_family(family)
        originals.update({n.define_schema().node_id: n for n in (module.NODES if module else ())})
    for node in pack.all_nodes():
        original = originals[node.define_schema().node_id]
        assert issubclass(node, original) and node.__name__ == original.__name__
        assert node.FUNCTION == original.FUNCTION
        assert node.INPUT_TYPES() == original.INPUT_TYPES()
        for hook in ("fingerprint_inputs", "check_lazy_status", "validate_inputs"):
            mine, theirs = first_real_override(node, hook), first_real_override(original, hook)
            assert (mine is None) == (theirs is None) and (mine is None or mine.__func__ is theirs.__func__)


def make_node(io, is_async=False):
    seen = {}

    class Probe(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="UniStyleTestProbe", category="test",
                             inputs=[io.Float.Input("strength"), io.Image.Input("image"),
                                     io.Latent.Input("latent", optional=True, lazy=True), io.String.Input("text")],
                             outputs=[io.Float.Output()], hidden=[io.Hidden.unique_id])

        @classmethod
        def fingerprint_inputs(cls, **kwargs):
            return "same"

        if is_async:
            @classmethod
            async def execute(cls, strength, image, text, latent=None):
                seen.update(unique_id=cls.hidden.unique_id, latent=latent, text=text)
                return io.NodeOutput(strength * 2)
        else:
            @classmethod
            def execute(cls, strength, image, text, latent=None):
                seen.update(unique_id=cls.hidden.unique_id, latent=latent, text=text)
                return io.NodeOutput(strength * 2)
    return Probe, seen


@pytest.mark.parametrize("is_async", [False, True])
def test_through_comfyuis_own_call_path(checked, is_async):
    """The way execution.py runs a V3 node: class clone with hidden inputs, locked, FUNCTION by name."""
    from comfy_api.internal import make_locked_method_func
    from comfy_api.latest import io
    from unistyle_pack.nodes.guards import NodeInputError
    probe, seen = make_node(io, is_async)
    node = checked(probe)
    assert node.FUNCTION == ("EXECUTE_NORMALIZED_ASYNC" if is_async else "EXECUTE_NORMALIZED")

    def run(**inputs):
        node.VALIDATE_CLASS()
        clone = node.PREPARE_CLASS_CLONE({io.Hidden.unique_id: "7"})
        out = make_locked_method_func(node, node.FUNCTION, clone)(**inputs)
        return asyncio.run(out) if is_async else out

    out = run(strength=0.25, image=torch.zeros(1, 2, 2, 3), text="nan", latent=None)  # lazy input left unevaluated
    assert out.result == (0.5,) and seen == {"unique_id": "7", "latent": None, "text": "nan"}
    with pytest.raises(NodeInputError, match=r"^latent: contains NaN"):
        run(strength=0.25, image=torch.zeros(1, 2, 2, 3), text="", latent={"samples": torch.tensor([[math.nan]])})
    with pytest.raises(NodeInputError, match=r"^latent \(noise_mask\): contains NaN"):
        run(strength=0.25, image=torch.zeros(1, 2, 2, 3), text="",
            latent={"samples": torch.zeros(1, 1), "noise_mask": torch.tensor([math.inf])})
    with pytest.raises(NodeInputError, match=r"^strength: expected a finite number, got nan"):
        run(strength=math.nan, image=torch.zeros(1, 2, 2, 3), text="")
    seen.clear()
    with pytest.raises(NodeInputError, match=r"^image: contains NaN or infinite values \(item 0 of 1"):
        run(strength=1.0, image=torch.full((1, 2, 2, 3), -math.inf), text="")
    assert seen == {}  # refused before the node body ran


def test_positional_arguments_and_input_lists_are_checked(checked):
    from comfy_api.latest import io
    from unistyle_pack.nodes.guards import NodeInputError
    probe, _ = make_node(io)
    node = checked(probe)
    with pytest.raises(NodeInputError, match="^strength: "):
        node.execute(math.inf, torch.zeros(1, 1, 1, 3), "")
    from unistyle_pack.nodes.input_checks import check_value
    with pytest.raises(NodeInputError, match="^images: "):
        check_value([torch.zeros(1), torch.tensor([math.nan])], "images", "IMAGE")
    with pytest.raises(NodeInputError, match="^names: 'c' is not one of the choices \\('a', 'b'\\)"):
        check_value(["a", "c"], "names", "COMBO", ["a", "b"])
