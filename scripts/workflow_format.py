"""Turn an API-format workflow into the UI format the ComfyUI frontend loads, using /object_info.

The API format ({"id": {"class_type", "inputs"}}) is what /prompt and scripts/batch.py take; the UI
format (nodes, links, widgets_values) is what a person opens in the editor. workflows/api/ holds the
API graphs; scripts/build_workflows.py writes their UI twins with api_to_ui(), and the e2e tests
check that every committed UI file is exactly what api_to_ui gives for its API twin. Loaders carry
`properties.models` (name, url, directory) and each workflow gets a MarkdownNote saying what to download
or train first (scripts/model_catalog.py).
"""
from scripts.model_catalog import model_refs, note_markdown, properties_models

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def _is_widget(spec):
    kind = spec[0]
    return isinstance(kind, list) or kind in WIDGET_TYPES


def has_seed_control(name, spec):
    """The frontend adds a 'control after generate' widget value to INT seeds, declared or by name."""
    options = spec[1] if len(spec) > 1 else {}
    return bool(options.get("control_after_generate")) or (spec[0] == "INT" and name in ("seed", "noise_seed"))


def _input_specs(info):
    order = info.get("input_order") or {s: list(info["input"].get(s, {})) for s in ("required", "optional")}
    for section in ("required", "optional"):
        for name in order.get(section, []):
            yield name, info["input"][section][name]


def _depths(api):
    depth = {}

    def visit(nid, stack=()):
        if nid in depth:
            return depth[nid]
        if nid in stack:
            raise ValueError(f"the workflow has a cycle through node {nid}")
        ups = [visit(v[0], stack + (nid,)) for v in api[nid]["inputs"].values() if isinstance(v, list)]
        depth[nid] = 1 + max(ups, default=-1)
        return depth[nid]

    for nid in api:
        visit(nid)
    return depth


def api_to_ui(api, object_info, title=None):
    """The UI-format dict for `api`; raises ValueError naming the node for unknown types or inputs."""
    for nid, node in api.items():
        if node["class_type"] not in object_info:
            raise ValueError(f"node {nid}: unknown node type {node['class_type']!r}")
    depth = _depths(api)
    column_rows = {}
    ids = sorted(api, key=int)
    nodes, links = [], []
    outputs = {nid: [{"name": name, "type": kind, "links": [], "slot_index": i}
                     for i, (name, kind) in enumerate(zip(object_info[api[nid]["class_type"]]["output_name"],
                                                          object_info[api[nid]["class_type"]]["output"]))]
               for nid in ids}
    for nid in ids:
        node = api[nid]
        info = object_info[node["class_type"]]
        known = dict(_input_specs(info))
        for name in node["inputs"]:
            if name not in known:
                raise ValueError(f"node {nid} ({node['class_type']}): no input named {name!r}")
        inputs, widgets = [], []
        for name, spec in _input_specs(info):
            value = node["inputs"].get(name)
            widget = _is_widget(spec)
            kind = "COMBO" if isinstance(spec[0], list) else spec[0]
            if isinstance(value, list):
                link_id = len(links) + 1
                src, slot = str(value[0]), value[1]
                links.append([link_id, int(src), slot, int(nid), len(inputs), kind])
                outputs[src][slot]["links"].append(link_id)
                entry = {"name": name, "type": kind, "link": link_id}
                if widget:
                    entry["widget"] = {"name": name}
                inputs.append(entry)
                if widget:  # a widget fed by a link keeps its slot in widgets_values
                    widgets.append(spec[1].get("default") if len(spec) > 1 else None)
            elif widget:
                widgets.append(spec[1].get("default") if value is None and len(spec) > 1 else value)
            else:
                inputs.append({"name": name, "type": kind, "link": None})  # an unconnected optional socket
            if widget and has_seed_control(name, spec):
                widgets.append("fixed")
        if any(len(spec) > 1 and (spec[1].get("image_upload") or spec[1].get("video_upload")) for spec in known.values()):
            widgets.append("image")  # the upload button's widget value the frontend keeps
        col = depth[nid]
        row = column_rows.get(col, 0)
        column_rows[col] = row + 1
        nodes.append({"id": int(nid), "type": node["class_type"], "pos": [40 + 360 * col, 40 + 260 * row],
                      "size": [320, 120 + 26 * len(widgets)], "flags": {}, "order": 0, "mode": 0,
                      "inputs": inputs, "outputs": outputs[nid],
                      "properties": {"Node name for S&R": node["class_type"]}, "widgets_values": widgets,
                      **({"title": node["_meta"]["title"]} if node.get("_meta", {}).get("title") else {})})
    refs = model_refs(api)
    for node in nodes:
        entries = properties_models([name for nid, _, name in refs if int(nid) == node["id"]])
        if entries:
            node["properties"]["models"] = entries
    order = sorted(ids, key=lambda n: (depth[n], int(n)))
    for node in nodes:
        node["order"] = order.index(str(node["id"]))
    note = note_markdown(api)
    if note:
        nodes.append({"id": max(int(n) for n in ids) + 1, "type": "MarkdownNote",
                      "pos": [40, 40 + 260 * column_rows.get(0, 0)], "size": [520, 320], "flags": {},
                      "order": len(nodes), "mode": 0, "inputs": [], "outputs": [], "properties": {},
                      "widgets_values": [note], "title": "Read me first: models"})
    return {"last_node_id": max(node["id"] for node in nodes), "last_link_id": len(links), "nodes": nodes, "links": links,
            "groups": [], "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [0, 0]},
                                                  **({"title": title} if title else {})},
            "version": 0.4}
