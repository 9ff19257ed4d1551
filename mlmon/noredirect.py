"""The redirect policy of mlmon's HTTP clients (Prometheus, MLflow): follow none.

A module of its own so that the MLflow client does not import the Prometheus client (and its parsing code)
for one class.
"""

from __future__ import annotations

import urllib.request
from typing import Any


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Follow no redirect: it would carry the credentials (Authorization) to wherever it points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx answer is then reported as it is
