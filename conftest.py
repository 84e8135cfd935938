"""Root conftest: the harness's pytest plugin drives the suites in suites/."""

pytest_plugins = ["harness.plugin"]
