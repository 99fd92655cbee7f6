"""Open every UI-format workflow in the real ComfyUI frontend (headless Chromium) and check it.

    python scripts/check_ui_workflows.py [--chromium /usr/bin/chromium]

Needs Chromium and the `playwright` package (not part of the pack's requirements: a developer check).
For each workflows/<name>.json it loads the graph with the frontend's own app.loadGraphData, checks
that every node type is known to the frontend, and asks the frontend for the API prompt
(app.graphToPrompt); that prompt must equal workflows/api/<name>.json node for node and input for
input. Exit code 1 on any difference.
"""
import argparse
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def compare(name, mine, frontend):
    problems = []
    if set(mine) != set(frontend):
        problems.append(f"{name}: node ids differ: {sorted(set(mine) ^ set(frontend))}")
    for nid in sorted(set(mine) & set(frontend), key=int):
        a, b = mine[nid], frontend[nid]
        if a["class_type"] != b["class_type"]:
            problems.append(f"{name} node {nid}: {a['class_type']} vs frontend {b['class_type']}")
        for key in set(a["inputs"]) | set(b["inputs"]):
            if a["inputs"].get(key) != b["inputs"].get(key):
                problems.append(f"{name} node {nid} ({a['class_type']}).{key}: {a['inputs'].get(key)!r} vs "
                                f"frontend {b['inputs'].get(key)!r}")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright
    from scripts import host
    from scripts.make_fixtures import ensure_fixtures
    base = os.path.join(ROOT, "build", "ui-check-host")
    port = host.start(base, models=ensure_fixtures(), test_nodes=True)
    problems, checked = [], 0
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=a.chromium, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"])
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"http://127.0.0.1:{port}/", wait_until="networkidle")
            page.wait_for_function("() => window.app && window.app.graph", timeout=120000)
            for ui_path in sorted(glob.glob(os.path.join(ROOT, "workflows", "*.json"))):
                name = os.path.basename(ui_path)[:-5]
                api_path = os.path.join(ROOT, "workflows", "api", name + ".json")
                ui = json.load(open(ui_path))
                result = page.evaluate("""async (wf) => {
                    await window.app.loadGraphData(wf);
                    const unknown = window.app.graph._nodes.filter(n => !LiteGraph.registered_node_types[n.type]).map(n => n.type);
                    const prompt = await window.app.graphToPrompt();
                    return {count: window.app.graph._nodes.length, unknown, output: prompt.output};
                }""", ui)
                checked += 1
                if result["unknown"]:
                    problems.append(f"{name}: node types unknown to the frontend: {result['unknown']}")
                if result["count"] != len(ui["nodes"]):
                    problems.append(f"{name}: frontend has {result['count']} nodes, file has {len(ui['nodes'])}")
                if os.path.exists(api_path):
                    frontend = {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in result["output"].items()}
                    mine = {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in json.load(open(api_path)).items()}
                    problems += compare(name, mine, frontend)
                print(f"{name}: {result['count']} nodes loaded")
            problems += [f"page error: {e}" for e in errors]
            browser.close()
    finally:
        host.stop(base)
    for line in problems:
        print("PROBLEM", line)
    print(f"{checked} workflows checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
