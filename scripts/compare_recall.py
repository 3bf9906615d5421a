"""Check that a change to recall is pure speed: rank the workload's questions with main's memory/recall.py
and with this tree's, in one process on the same indexes (Chroma's approximate kNN can differ between
processes), and print any question whose results differ.

    KGMEM_HOME=/tmp/fastpath-prof KGMEM_NEO4J_PICK_FREE_PORT=true PYTHONPATH=$PWD \
        python scripts/compare_recall.py /tmp/recall_ref.py   # git show REV:memory/recall.py > /tmp/recall_ref.py
"""

from __future__ import annotations

import importlib.util
import sys

from api.bench.perf.workload import generate
from api.cli.context import cli_services
from memory.recall import Recall, RecallQuery

spec = importlib.util.spec_from_file_location("recall_reference", sys.argv[1])
reference = importlib.util.module_from_spec(spec)
sys.modules["recall_reference"] = reference
spec.loader.exec_module(reference)
SPACE = "fastpath-10k"
work = generate(10_000, seed=7, questions=200)

with cli_services() as services:
    memory = services.memory()
    ours = Recall(memory.gateway, memory.index, memory.embedder)
    theirs = reference.Recall(memory.gateway, memory.index, memory.embedder)
    differ = 0
    for text in work.questions:
        for explain in (False, True):
            a = ours.recall(SPACE, RecallQuery(text=text, explain=explain)).model_dump(exclude={"took_ms"})
            b = theirs.recall(SPACE, reference.RecallQuery(text=text, explain=explain)).model_dump(exclude={"took_ms"})
            if a != b:
                differ += 1
                print("DIFFERS:", text, explain)
    print(f"{differ} of {2 * len(work.questions)} recalls differ")
