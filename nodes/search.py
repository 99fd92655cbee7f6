"""Search terms for the node search box.

The frontends of ComfyUI 0.3.52 .. 0.3.75 (1.25 .. 1.32) match what a user types against the node id and
display name only, so the words users search for ("style transfer", "stylize video", "motion style") are
part of the display names; a ComfyUI whose io.Schema has `search_aliases` gets the terms there as well.
"""
import dataclasses

from comfy_api.latest import io

SUPPORTED = "search_aliases" in {f.name for f in dataclasses.fields(io.Schema)}


def search_aliases(*terms):
    """Schema keyword arguments: {"search_aliases": [...]} where this ComfyUI supports it, else {}."""
    return {"search_aliases": list(terms)} if SUPPORTED else {}
