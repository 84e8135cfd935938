"""The verification harness for Microsoft Entra Workload ID on AKS: the library behind ``suites/``.

Collect, redact, analyse, report, in that order:

* :mod:`harness.config` loads and validates ``harness.yaml``;
* :mod:`harness.collect` (kube, arm, issuer) does all I/O and returns plain dataclass facts
  (:mod:`harness.facts`), each family behind one swappable seam;
* :mod:`harness.checks` are pure functions of facts that return check results and findings;
* :mod:`harness.report` writes ``run.json`` and the terminal summary;
* :mod:`harness.plugin` is the pytest plugin the root ``conftest.py`` enables.
"""

__version__ = "0.1.0"
