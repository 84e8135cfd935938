"""metav1.LabelSelector, as the API server and controllers read it: matching a label set, and the text
``kubectl get`` prints (metav1.FormatLabelSelector). One place for NetworkPolicy, webhook, Gatekeeper, PDB and RBAC
aggregation selectors."""

from __future__ import annotations

from typing import Any


def requirement_matches(requirement: dict[str, Any], labels: dict[str, str]) -> bool:
    """One matchExpressions entry (In, NotIn, Exists, DoesNotExist) against a label set."""
    key, operator = requirement.get("key"), requirement.get("operator")
    values = list(requirement.get("values") or [])
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    return True  # validation refuses other operators before a selector is stored


def matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """LabelSelectorAsSelector(selector).Matches(labels); a nil or empty selector selects everything."""
    selector = selector or {}
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    return all(requirement_matches(requirement, labels) for requirement in selector.get("matchExpressions") or [])


def format_selector(selector: dict[str, Any] | None) -> str:
    """metav1.FormatLabelSelector: ``<none>`` for an empty selector, else its requirements joined by commas."""
    selector = selector or {}
    parts = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key", ""), expression.get("operator", "")
        values = ",".join(sorted(expression.get("values") or []))
        parts.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key,
                      "DoesNotExist": f"!{key}"}.get(operator, key))
    return ",".join(parts) or "<none>"
