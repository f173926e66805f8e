"""Shared by every test folder: the ``pytester`` fixture, for the plugin's own tests (tests/plugin).

``pytest_plugins`` is only honoured in a top-level conftest, hence here and not in tests/plugin.

In-process ``pytester`` runs snapshot ``sys.modules`` and restore it afterwards: a library first
imported inside such a run is imported a second time later, and its exception classes then differ
from the ones other modules hold (httpx stopped translating httpcore's ConnectError, and
``except httpx.HTTPError`` no longer caught it). Importing them here, before any snapshot, keeps
one copy of each for the whole session.
"""

import google.auth.transport.requests  # noqa: F401
import httpcore  # noqa: F401
import httpx  # noqa: F401
import hvac  # noqa: F401
import jwt  # noqa: F401
import prometheus_client.parser  # noqa: F401
import psutil  # noqa: F401
import requests  # noqa: F401

import pytest_observastack._gcp  # noqa: F401

pytest_plugins = ["pytester"]
