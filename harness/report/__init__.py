"""Reports: run.json (schema wi-harness/run/v1) and the terminal summary."""
