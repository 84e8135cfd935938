"""The in-pod probe: ``python -m probe`` prints ONE JSON document (schema ``wi-probe/v1``) on stdout.

Document shape::

    {"schema": "wi-probe/v1", "probe_version": "...", "started_at": "RFC3339", "finished_at": "RFC3339",
     "pod": {"name": ..., "namespace": ..., "service_account": ...},
     "steps": [{"name": "config|env|token|exchange|access", "status": "pass|fail|skip",
                "duration_ms": 1.2, "evidence": {...}, "error": {...} | null,
                "reason": "because <step> failed"   # skip only
                # access steps also carry: "index", "kind", "target", "expect", "outcome"
               }],
     "ok": true}

Exit code 0 when every step passed, 1 otherwise. The probe never prints a raw token or a secret value:
decoded claims and a 12-hex-character sha256 fingerprint only.

Layering: the core uses only the Python standard library and imports nothing from ``harness`` or
``lab``; only the optional SDK cross-check (``probe.sdk``) imports ``azure.identity``.

Records are ``collections.namedtuple``s (immutable) or plain classes with ``__slots__`` (mutable), not dataclasses:
the dataclasses module imports ``inspect`` and compiles every class's methods when the probe starts, which was about
15 ms of each probe process's 85 ms of CPU (``python -m bench.probe_start``). For the same reason the probe does not
import ``typing`` when it runs (about 4 ms of each start: 5 % of its CPU): each module's ``TYPE_CHECKING = False``
keeps its type-only imports (``Any``, the ``Transport`` and ``SdkCheck`` protocols) for type checkers.
"""

__version__ = "0.1.0"
SCHEMA = "wi-probe/v1"
