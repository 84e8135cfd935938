"""Pod-managed identity (aad-pod-identity) leftovers, one test per check, in the order of the work:

every AzureIdentityBinding has its Workload ID replacement (a ServiceAccount annotated with its identity's client
id, a federated credential for this cluster's issuer, pods labelled for Workload ID: the coverage table in
run.json), no pod still labelled aadpodidbinding, no AzureIdentity / AzureIdentityBinding /
AzurePodIdentityException / AzureAssignedIdentity, no NMI DaemonSet or MIC Deployment, no aadpodidentity.k8s.io
CRD, and the AKS pod identity add-on off (ARM's podIdentityProfile). Leftovers are errors once harness.yaml says
``expect: {migration_complete: true}``, warnings before.
"""

from harness.assertions import verify
from harness.checks.model import CheckResult


def test_migration(wi_migration_check: CheckResult) -> None:
    verify(wi_migration_check)
