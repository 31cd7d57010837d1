"""Calls to peer services: short timeouts, retries only for safe methods, a circuit breaker,
the caller's request id and bearer token passed on."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pybreaker
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .logs import request_id_var

log = logging.getLogger(__name__)


class PeerUnavailable(Exception):
    """The peer could not answer (down, timing out, erroring, or its circuit is open)."""


@dataclass
class PeerResponse:
    status: int
    body: Any


class PeerClient:
    """GETs JSON from one peer service."""

    def __init__(self, name: str, base_url: str, *, timeout: float = 2.0, failures_to_open: int = 5, reset_seconds: int = 15):
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        # GET is safe to retry: two quick retries on connection errors and gateway-type statuses.
        retry = Retry(
            total=2,
            connect=2,
            read=1,
            backoff_factor=0.1,
            status_forcelist=(502, 503, 504),
            allowed_methods={"GET"},
            raise_on_status=False,
        )
        self.session.mount("http://", HTTPAdapter(max_retries=retry, pool_maxsize=16))
        self.session.mount("https://", HTTPAdapter(max_retries=retry, pool_maxsize=16))
        self.breaker = pybreaker.CircuitBreaker(fail_max=failures_to_open, reset_timeout=reset_seconds, name=name)

    def get(self, path: str, *, bearer: str | None = None) -> PeerResponse:
        headers = {"Accept": "application/json"}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        request_id = request_id_var.get()
        if request_id:
            headers["X-Request-ID"] = request_id
        try:
            return self.breaker.call(self._get, self.base_url + path, headers)
        except pybreaker.CircuitBreakerError:
            raise PeerUnavailable(f"{self.name} is unavailable (circuit open)") from None
        except requests.RequestException as exc:
            log.warning("%s unreachable: %s", self.name, exc.__class__.__name__)
            raise PeerUnavailable(f"{self.name} is unreachable") from None

    def _get(self, url: str, headers: dict) -> PeerResponse:
        response = self.session.get(url, headers=headers, timeout=self.timeout)
        if response.status_code >= 500:
            # Counted by the breaker: the peer is failing, not the request.
            raise requests.HTTPError(f"{response.status_code} from {url}")
        try:
            body = response.json()
        except ValueError:
            body = None
        return PeerResponse(response.status_code, body)
