"""Per workload (NS/SA), one test per link of the chain, in order:

ServiceAccount + client-id annotation -> probe pod admitted and mutated (env, projected token, read-only
mount; any webhook layout) -> in-container env -> token sub/aud/iss/exp -> managed identity and federated
credential (ARM) -> token exchange at Entra -> access token identity -> every access check (allow / deny).

A check whose prerequisite failed is reported as skipped "because <check> failed", never as a pass.
``--pod NS/POD`` checks an existing pod's admitted spec, then runs a probe pod under its ServiceAccount.
"""

from harness.assertions import verify
from harness.checks.model import CheckResult


def test_workload(wi_workload_check: CheckResult) -> None:
    verify(wi_workload_check)


def test_existing_pod(wi_pod_check: CheckResult) -> None:
    verify(wi_pod_check)
