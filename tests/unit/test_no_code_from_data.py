"""No code from data: nothing in the tree unpickles (issue 12).

Checkpoints and resume state are safetensors + JSON. Every Python file outside .venv/build/.git is parsed
and each call is checked: torch.load only with weights_only=True, np.load never with allow_pickle=True,
no call into pickle/dill/joblib/shelve/marshal or pandas' read_pickle (catching pickle.UnpicklingError is fine),
no yaml.load (yaml.safe_load is fine). Shell scripts are grepped.
"""
import ast
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SKIP_DIRS = {".venv", "build", ".git", "__pycache__", "demo_output", "node_modules", ".pytest_cache"}
PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
FORBIDDEN_CALLS = {"yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "yaml.unsafe_load_all",
                   "pd.read_pickle", "pandas.read_pickle", "torch.serialization.load"}


def tree_files(ext):
    for root, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not os.path.islink(os.path.join(root, d))]
        for f in files:
            if f.endswith(ext):
                yield os.path.join(root, f)


def dotted(node):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def keyword_is(call, name, value):
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is value for k in call.keywords)


def has_keyword(call, name):
    return any(k.arg == name or k.arg is None for k in call.keywords)  # k.arg None: **kwargs could carry it


def problems(source, path="<source>"):
    """(line, what) for every call in `source` that can turn data into code."""
    found = []
    tree = ast.parse(source, path)
    aliases = {}  # local name -> module or function it stands for (import numpy as np, from torch import load)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = dotted(node.func)
        if name is None:
            continue
        head, _, rest = name.partition(".")
        full = aliases.get(head, head) + (f".{rest}" if rest else "")
        full = full.replace("numpy.", "np.", 1) if full.startswith("numpy.") else full
        if full == "torch.load" and not keyword_is(node, "weights_only", True):
            found.append((node.lineno, "torch.load without weights_only=True"))
        elif full == "np.load" and has_keyword(node, "allow_pickle") and not keyword_is(node, "allow_pickle", False):
            found.append((node.lineno, "np.load with allow_pickle"))
        elif full in FORBIDDEN_CALLS or full.split(".")[0] in PICKLE_MODULES:
            found.append((node.lineno, full))
    return found


SHELL_PATTERN = re.compile(r"torch\.load\((?![^)]*weights_only\s*=\s*True)|allow_pickle\s*=\s*True|pickle\.loads?\(|"
                           r"yaml\.(unsafe_|full_)?load\(")


def test_no_python_file_turns_data_into_code():
    bad = []
    files = list(tree_files(".py"))
    assert len(files) > 50  # the walk saw the pack, its scripts and tests
    for path in files:
        with open(path, encoding="utf-8") as f:
            source = f.read()
        bad += [f"{os.path.relpath(path, ROOT)}:{line}: {what}" for line, what in problems(source, path)]
    assert not bad, "calls that can run code from a file (use safetensors + JSON):\n" + "\n".join(bad)


def test_no_shell_script_turns_data_into_code():
    bad = []
    for path in list(tree_files(".sh")) + list(tree_files(".ipynb")):
        with open(path, encoding="utf-8", errors="replace") as f:
            for i, line in enumerate(f, 1):
                if SHELL_PATTERN.search(line):
                    bad.append(f"{os.path.relpath(path, ROOT)}:{i}: {line.strip()}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("source,count", [
    ("import torch\ntorch.load(p)", 1),
    ("import torch\ntorch.load(p, weights_only=False)", 1),
    ("import torch\ntorch.load(p, map_location='cpu',\n           weights_only=True)", 0),
    ("from torch import load as tl\ntl(p)", 1),
    ("import torch as T\nT.load(p, **kw)", 1),
    ("import numpy as np\nnp.load(p)", 0),
    ("import numpy as np\nnp.load(p, allow_pickle=False)", 0),
    ("import numpy\nnumpy.load(p, allow_pickle=True)", 1),
    ("import numpy as np\nnp.load(p, allow_pickle=flag)", 1),
    ("import pickle\npickle.loads(b)", 1),
    ("from pickle import loads as l\nl(b)", 1),
    ("import pickle\ntry:\n    f()\nexcept pickle.UnpicklingError:\n    pass", 0),
    ("import _pickle\n_pickle.Unpickler(f).load()", 1),
    ("import yaml\nyaml.safe_load(s)", 0),
    ("import yaml\nyaml.load(s, Loader=yaml.SafeLoader)", 1),
    ("import pandas as pd\npd.read_pickle(p)", 1),
    ("import joblib\njoblib.load(p)", 1),
    ("import marshal\nmarshal.loads(b)", 1),
    ("model.load(p)\nsafetensors.torch.load_file(p)\njson.load(f)", 0),
])
def test_the_checker_finds_each_form(source, count):
    assert len(problems(source)) == count, problems(source)
