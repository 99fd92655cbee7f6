"""Write pyproject.toml's [project] dependencies from requirements.txt (the one list both installers read).

    python scripts/sync_pyproject.py           # rewrite the dependencies line
    python scripts/sync_pyproject.py --check   # exit 1 when they differ

ComfyUI-Manager installs requirements.txt; the Comfy Registry and comfy-cli read pyproject.toml.
"""
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def requirements(path=os.path.join(ROOT, "requirements.txt")):
    """The requirement specifiers of PATH, comments and blank lines dropped, in file order."""
    lines = (line.split("#", 1)[0].strip() for line in open(path))
    return [line for line in lines if line]


def dependencies_line(reqs):
    return "dependencies = " + json.dumps(reqs)


def synced(text, reqs):
    new, n = re.subn(r"(?m)^dependencies = \[.*\]$", dependencies_line(reqs), text)
    if n != 1:
        raise ValueError("pyproject.toml: expected one one-line `dependencies = [...]` in [project]")
    return new


def main(argv):
    path = os.path.join(ROOT, "pyproject.toml")
    text = open(path).read()
    new = synced(text, requirements())
    if "--check" in argv:
        if new != text:
            print("pyproject.toml dependencies differ from requirements.txt: run python scripts/sync_pyproject.py")
            return 1
        return 0
    if new != text:
        with open(path, "w") as f:
            f.write(new)
        print("wrote pyproject.toml dependencies")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
