"""The model-audit worker: a separate process that does the MODEL audits of one node (the core node starts it
and talks to it through pipes, ``audits.model.ModelAuditor``; why: docs/models.md).

    python -m alignment_node.models.worker        (JSON lines: a request on stdin, its answer on stdout)

Request: ``{"epoch", "seed": "0x..", "deadline_s", "targets": [{"id", "endpoint", "identity": "0x..",
"license"}], "sources": [dir or URL, ...], "cache_dir", "state_dir", "policy": {...}}``.
Answer (``Worker.handle``): ``{"results": [{"id", "verdict", "bundle"}], "skipped": [{"id", "reason"}]}``,
written as one line per item, ``{"result": {...}}`` or ``{"skipped": {...}}``, then ``{"done": true}`` (or one
``{"error": "..."}`` line): the protocol of ``audits.worker``. A target whose baseline cannot be had or verified is skipped with the reason.
Per-target drift state lives in ``state_dir/drift-<id>-<identity prefix>.json``.

A version-2 baseline (``baseline.is_served``: a served chat model, ``models.keeper``) is audited by
``served_audit.audit_served`` without weights; its per-target state (the provider's LT snapshot) lives in
``state_dir/served-<id>-<identity prefix>.json``. torch is imported only when a version-1 baseline needs the
reference model, so a worker that audits only version-2 targets never loads it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("alignment_node.models.worker")


def save_state(path: Path, text: str) -> None:
    """Replace a target's state file whole (a full disk leaves the previous one, never half a file, and the audit
    goes on: the state is then one epoch behind)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        log.warning("%s not saved (kept the previous state): %s", path, exc)


class Worker:
    def __init__(self) -> None:
        self.models: dict[tuple[int, int], Any] = {}

    def reference_model(self, baseline: dict):
        import torch  # only here: a version-1 baseline needs the reference model; version 2 never loads torch

        from . import lm

        torch.set_num_threads(1)

        m = baseline["model"]
        if m.get("family") != "alignment-tinylm":
            return None, f"no local copy of model family {m.get('family')!r}"
        key = (int(m["seed"]), int(m["steps"]))
        if key not in self.models:
            self.models[key] = lm.load_or_train(*key)
        model = self.models[key]
        got = lm.weights_hash(model)
        if got != m["weights_sha256"]:
            return None, f"the local model's weights hash {got} is not the baseline's {m['weights_sha256']}"
        return model, None

    async def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        from . import baseline as B
        from .audit import ModelPolicy, audit_target

        known = set(ModelPolicy.__dataclass_fields__)
        policy = ModelPolicy(**{k: v for k, v in req.get("policy", {}).items() if k in known})
        seed = bytes.fromhex(req["seed"].removeprefix("0x"))
        state_dir = Path(req["state_dir"])
        state_dir.mkdir(parents=True, exist_ok=True)
        results, skipped = [], []
        jobs = []
        for t in req["targets"]:
            try:
                baseline = B.fetch(t["identity"], req.get("sources", []), req.get("cache_dir"))
            except B.BaselineError as exc:
                skipped.append({"id": t["id"], "reason": str(exc)})
                continue
            if B.is_served(baseline):
                state_file = state_dir / f"served-{t['id']}-{t['identity'][2:18]}.json"
                state = json.loads(state_file.read_text()) if state_file.is_file() else None
                jobs.append((t, baseline, None, state, state_file))
                continue
            model, why = self.reference_model(baseline)
            if why:
                log.warning("target %d: %s; rank and likelihood tests are left out", t["id"], why)
            state_file = state_dir / f"drift-{t['id']}-{t['identity'][2:18]}.json"
            state = json.loads(state_file.read_text()) if state_file.is_file() else None
            jobs.append((t, baseline, model, state, state_file))

        async def one(job):
            t, baseline, model, state, state_file = job
            if B.is_served(baseline):
                from .served_audit import ServedPolicy, audit_served

                bundle = await audit_served(t, baseline, seed, int(t.get("license", 0)),
                                            ServedPolicy.from_dict(req.get("policy")), float(req["deadline_s"]),
                                            state, int(req["epoch"]))
                if bundle.get("state_after"):
                    save_state(state_file, bundle["state_after"])
                return t["id"], bundle
            bundle = await audit_target(t, baseline, t["identity"], model, seed, int(t.get("license", 0)), policy,
                                        float(req["deadline_s"]), state, int(req["epoch"]))
            if bundle.get("drift_after"):
                save_state(state_file, bundle["drift_after"])
            return t["id"], bundle

        for tid, bundle in await asyncio.gather(*(one(j) for j in jobs)):
            from ..protocol import VERDICT_NAMES

            verdict = {v: k for k, v in VERDICT_NAMES.items()}[bundle["verdict"]]
            results.append({"id": tid, "verdict": verdict, "bundle": bundle})
        return {"results": results, "skipped": skipped}


async def _answers(worker: Worker, req: dict[str, Any]):
    answer = await worker.handle(req)
    for s in answer["skipped"]:
        yield {"skipped": s}
    for r in answer["results"]:
        yield {"result": r}


def main() -> int:
    from ..audits.worker import serve

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    worker = Worker()
    return asyncio.run(serve(lambda req: _answers(worker, req)))


if __name__ == "__main__":
    sys.exit(main())
