"""Cluster prerequisites of Entra Workload ID, one test per check:

OIDC issuer enabled, its discovery document and JWKS reachable over HTTPS, workload identity enabled (ARM),
the mutating webhook installed with failurePolicy Fail and an objectSelector, and its Deployment ready.
"""

from harness.assertions import verify
from harness.checks.model import CheckResult


def test_cluster(wi_cluster_check: CheckResult) -> None:
    verify(wi_cluster_check)
