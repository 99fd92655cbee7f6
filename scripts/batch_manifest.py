"""The batch manifest: JSON lines, appended atomically, folded into each input's latest state.

Every line is one event about one item (its input's relative path) under one key (workflow + input content):

    run        {"client_id", "workflow_sha", "servers"}   once per invocation (no item)
    submitted  {"server", "prompt_id", "client_id"}       written and fsynced BEFORE the prompt is sent
    requeued   {"server", "prompt_id", "reason"}          its server went away, or lost the prompt
    done       {"server", "prompt_id", "files": [{"path", "node", "bytes", "sha256"}], "seconds"}
    failed     {"server", "prompt_id", "kind", "reason"}

A line is written by one os.write on an O_APPEND descriptor and fsynced, so writers never interleave and a
crash leaves at most a torn last line, which reading skips (and the next append starts on a fresh line).
"""
import json
import os
import time
from dataclasses import dataclass


@dataclass
class ItemState:
    status: str = "new"      # new | in_flight | done | failed
    record: dict | None = None  # the event that set the status
    failures: int = 0        # failed events under the current key


class Manifest:
    def __init__(self, path):
        self.path = path
        self._fd = None

    def read(self):
        """Every complete, parseable line as a dict (a torn or foreign line is skipped)."""
        if not os.path.exists(self.path):
            return []
        records = []
        with open(self.path, "rb") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and "event" in rec:
                    records.append(rec)
        return records

    def open(self):
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(self._fd).st_size
        if size:
            with open(self.path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":  # a torn line from a crash: end it, so the next record stands alone
                    os.write(self._fd, b"\n")
        return self

    def append(self, event, **fields):
        rec = {"event": event, **fields, "t": round(time.time(), 3)}
        os.write(self._fd, (json.dumps(rec, sort_keys=True) + "\n").encode())
        os.fsync(self._fd)
        return rec

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def client_id_of(records):
    """The client id of the first run recorded (kept across runs, so /history entries stay recognisable)."""
    return next((r["client_id"] for r in records if r["event"] == "run" and r.get("client_id")), None)


def fold(records, keys):
    """{item: ItemState} from the events whose key is KEYS[item] (events under an older key are history)."""
    states = {item: ItemState() for item in keys}
    for rec in records:
        item = rec.get("item")
        st = states.get(item)
        if st is None or rec.get("key") != keys[item]:
            continue
        event = rec["event"]
        if event == "submitted":
            st.status, st.record = "in_flight", rec
        elif event == "requeued":
            st.status, st.record = "new", rec
        elif event == "done":
            st.status, st.record = "done", rec
        elif event == "failed":
            st.status, st.record = "failed", rec
            st.failures += 1
    return states
