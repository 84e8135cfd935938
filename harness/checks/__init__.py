"""Checks: pure functions of facts -> :class:`~harness.checks.model.CheckResult` (+ findings).

Each family is an ordered chain (:mod:`harness.checks.chain`); when a check fails, the checks that depend
on it are skipped "because <check id> failed", the way doitintl's workload-identity-analyzer does.
"""
