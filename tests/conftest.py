"""Shared by every test folder: the ``pytester`` fixture, for the plugin's own tests (tests/plugin).

``pytest_plugins`` is only honoured in a top-level conftest, hence here and not in tests/plugin.
"""

pytest_plugins = ["pytester"]
