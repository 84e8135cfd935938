"""The cluster's Workload ID inventory, cross-matched with Azure, one test per check:

every ServiceAccount with the client-id annotation or the use label (cluster-wide, label-only ones too), every
managed identity (any readable subscription) and application with a federated credential for this cluster's
issuer; then each annotated client id is a known identity, each ServiceAccount's identity trusts it, no
credential names an old spelling or an older issuer, none names a ServiceAccount that is gone, no identity
is near its 20 credentials, and no identity a workload uses holds an administrative or subscription-wide role.
The tables are in run.json's ``inventory`` section (and the sign-off).
"""

from harness.assertions import verify
from harness.checks.model import CheckResult


def test_inventory(wi_inventory_check: CheckResult) -> None:
    verify(wi_inventory_check)
