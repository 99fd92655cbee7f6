"""Shared-server guards for every UniStyle node: confined paths, finite inputs, refusals that name the input.

ComfyUI keeps every file operation inside its own folders (models/, input/, output/, temp/, user/); the
pack holds the same line. Each helper raises `NodeInputError` (a ValueError, so ComfyUI's error panel shows
its message) whose text starts with the node input (or file) it is about and says what was expected.

    resolve_under(root, name, input_name)        -> real path inside root (relative name, no '..', no escape)
    output_folder(name, input_name)              -> a folder under ComfyUI's output/ (or a registered kind)
    input_file(name, input_name)                 -> an existing file under ComfyUI's input/
    model_file(kind, name, input_name)           -> an existing file listed in models/<kind>/
    new_model_path(kind, name, input_name, ext, overwrite) -> where a trainer may write a new model file
    finite(value, input_name)                    -> value, refusing NaN/inf numbers and tensors
"""
import math
import os
import re

import torch

import folder_paths

_DRIVE = re.compile(r"^[A-Za-z]:")


class NodeInputError(ValueError):
    """A refusal that names the node input it is about."""


def _check_relative(name, input_name):
    if not isinstance(name, str) or not name.strip():
        raise NodeInputError(f"{input_name}: expected a relative name, got an empty value")
    name = name.strip()
    if "\x00" in name:
        raise NodeInputError(f"{input_name}: the name contains a NUL character")
    if os.path.isabs(name) or name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise NodeInputError(f"{input_name}: absolute paths are not allowed ({name!r}); give a name relative to "
                             "ComfyUI's folder")
    parts = re.split(r"[\\/]+", name)
    if any(p == ".." for p in parts):
        raise NodeInputError(f"{input_name}: '..' is not allowed in {name!r}; give a name inside ComfyUI's folder")
    return name


def resolve_under(root, name, input_name):
    """`name` (relative) joined to `root`, resolved through symlinks, and checked to stay inside `root`."""
    name = _check_relative(name, input_name)
    root_real = os.path.realpath(root)
    full = os.path.realpath(os.path.join(root_real, name))
    if os.path.commonpath([root_real, full]) != root_real or full == root_real:
        raise NodeInputError(f"{input_name}: {name!r} resolves outside {root_real} (symlink or '..'); refused")
    return full


def output_folder(name, input_name, kind=None):
    """A folder for the pack to write under ComfyUI's output folder (or the first folder of a registered
    `kind`, e.g. 'unistyle_datasets')."""
    if kind is not None and folder_paths.folder_names_and_paths.get(kind, ([],))[0]:  # registered with a folder
        root = folder_paths.get_folder_paths(kind)[0]
    else:
        root = folder_paths.get_output_directory()
    return resolve_under(root, name, input_name)


def find_output_folder(name, input_name, kind=None):
    """An existing folder under ComfyUI's output folder or a registered `kind` (first match)."""
    roots = []
    if kind is not None and kind in folder_paths.folder_names_and_paths:
        roots += list(folder_paths.get_folder_paths(kind))
    roots.append(folder_paths.get_output_directory())
    for root in roots:
        full = resolve_under(root, name, input_name)
        if os.path.isdir(full):
            return full
    raise NodeInputError(f"{input_name}: no folder {name!r} under {', '.join(roots)}")


def input_file(name, input_name):
    """An existing file under ComfyUI's input folder, named as LoadImage names them (a trailing ' [output]' or
    ' [temp]' picks that folder instead)."""
    if not isinstance(name, str):
        raise NodeInputError(f"{input_name}: expected a file name, got {type(name).__name__}")
    stripped, root = folder_paths.annotated_filepath(name.strip())
    full = resolve_under(root or folder_paths.get_input_directory(), stripped, input_name)
    if not os.path.isfile(full):
        raise NodeInputError(f"{input_name}: no file {name!r} in ComfyUI's input folder")
    return full


def model_file(kind, name, input_name):
    """An existing model file of `kind`, by a name folder_paths lists for it.

    The listing is the confinement, as for ComfyUI's own loaders: only the server's owner puts files (or
    symlinks to a model kept elsewhere) into models/<kind>, so a listed symlink is followed."""
    _check_relative(name, input_name)
    full = folder_paths.get_full_path(kind, name) if name in folder_paths.get_filename_list(kind) else None
    if full is None:
        raise NodeInputError(f"{input_name}: {name!r} is not in models/{kind} (choose one from the list, or place "
                             f"the file in models/{kind} and refresh)")
    return full


def plain_name(name, input_name, ext=".safetensors"):
    """A plain file stem (no folders, no leading dot), with `ext` stripped if given."""
    name = (name or "").strip()
    if ext and name.endswith(ext):
        name = name[:-len(ext)]
    if not name or any(c in name for c in "/\\:\x00") or name.startswith("."):
        raise NodeInputError(f"{input_name}: expected a plain file name such as my_model, got {name!r}")
    return name


def new_model_path(kind, name, input_name, ext=".safetensors", overwrite=False):
    """Where a trainer writes `name` + ext in models/<kind>/. A model of that name in any folder of the kind (a
    file or the owner's symlink) is refused unless `overwrite`; overwriting never writes through a symlink out of
    the folder."""
    stem = plain_name(name, input_name, ext)
    roots = folder_paths.get_folder_paths(kind)
    if not overwrite and any(os.path.lexists(os.path.join(r, stem + ext)) for r in roots):
        raise NodeInputError(f"{input_name}: models/{kind}/{stem}{ext} already exists; choose a new name or turn on "
                             "'overwrite' to replace it")
    return resolve_under(roots[0], stem + ext, input_name)


def finite(value, input_name):
    """Refuse NaN/inf in a number or tensor (ComfyUI's min/max validation lets NaN through).

    A tensor is summed in its own precision (narrower floats in fp32): a NaN or inf anywhere makes the sum
    non-finite, and the sum needs no copy of a large video. Only a non-finite sum (a bad value, or an
    overflow of huge finite values) is looked at item by item, to confirm it and name the first bad item.
    """
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() and not _finite_sum(value):
            items = value.reshape(-1) if value.dim() == 0 else value
            for i, item in enumerate(items):
                if not _finite_sum(item) and not bool(torch.isfinite(item.float()).all()):
                    where = f" (item {i} of {len(items)} along the first axis)" if value.dim() > 0 else ""
                    raise NodeInputError(f"{input_name}: contains NaN or infinite values{where}")
    elif isinstance(value, float) and not math.isfinite(value):
        raise NodeInputError(f"{input_name}: expected a finite number, got {value}")
    return value


def _finite_sum(tensor):
    dtype = torch.float32 if tensor.element_size() < 4 else None
    return bool(torch.isfinite(tensor.sum(dtype=dtype)))
