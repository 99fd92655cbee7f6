"""What users see and type: every node has a display name and description, every input a tooltip, and the
terms users search for find each family's main nodes (the frontend matches node id + display name; a
ComfyUI whose Schema has search_aliases gets them too, nodes/search.py)."""
import pytest

TERMS = {  # what a user types -> node ids it must find
    "style transfer": {"HiCASTApplyStyleAdapters", "StyleMotifStylize", "DreamStyleConditioning"},
    "stylize video": {"DreamStyleConditioning", "DreamStyleLongVideo", "HiCASTApplyTemporalLayers"},
    "motion style": {"StyleMotifStylize", "StyleMotifBlendStyles", "StyleMotifEncodeStyle"},
}


@pytest.fixture(scope="module")
def schemas(unistyle):
    import asyncio
    extension = asyncio.run(unistyle.comfy_entrypoint())
    return {s.node_id: s for s in (n.define_schema() for n in asyncio.run(extension.get_node_list()))}


def searchable(schema):
    return " ".join([schema.node_id, schema.display_name or "", *(getattr(schema, "search_aliases", None) or [])]).lower()


@pytest.mark.parametrize("term", sorted(TERMS))
def test_search_terms_find_the_main_nodes(schemas, term):
    found = {nid for nid, s in schemas.items() if term in searchable(s)}
    assert TERMS[term] <= found, (term, TERMS[term] - found)


def test_display_names_descriptions_and_tooltips(schemas):
    assert len(schemas) >= 30
    for nid, s in schemas.items():
        assert s.display_name and s.display_name != nid and s.category.startswith("UniStyle/"), nid
        for i in s.inputs:
            assert getattr(i, "tooltip", None), f"{nid}.{i.id} has no tooltip"
