"""One HTTP exchange bounded as a whole, for mlmon's clients of Prometheus and MLflow.

A socket timeout bounds each wait for bytes, not the exchange: a server (or a proxy, or a load balancer in
trouble) that sends its status line, headers or body one byte a second resets it with every byte and holds
the caller for as long as it likes. Here a watchdog shuts the connection down at the deadline, whatever
phase it is in (connecting, TLS handshake, status line, headers, body), and the body is refused beyond a
size cap, before and after gzip decoding. Redirects are not followed (they would carry the credentials to
wherever they point); proxies from the environment are honoured.

    opener = build_opener(tls_context=None)
    answer = exchange(opener, urllib.request.Request(url), seconds=5.0, max_bytes=32 << 20)
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from email.message import Message
from typing import Any

CHUNK = 64 * 1024
# One attempt to connect; the deadline bounds it as well.
CONNECT_TIMEOUT_SECONDS = 5.0


class ExchangeError(Exception):
    """The exchange did not produce an answer; ``reason`` says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TooSlow(ExchangeError):
    """The whole answer did not arrive before the deadline."""


class TooLarge(ExchangeError):
    """The answer is larger than the cap."""


class Unreachable(ExchangeError):
    """No answer: connection refused, reset or closed early, a name that does not resolve, a TLS failure."""

    def __init__(self, reason: str, cause: BaseException | None = None) -> None:
        super().__init__(reason)
        self.cause = cause


@dataclass(frozen=True)
class Answer:
    """A server's whole answer, whatever its status (a 4xx or 5xx body says why)."""

    status: int
    reason: str
    headers: Message
    body: bytes
    url: str


class _Watchdog:
    """Shuts down the exchange's sockets at the deadline: a blocked read then returns at once."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        # A duplicate of the descriptor: shutdown() acts on the connection, so it works through the TLS
        # wrapper that takes the original socket over.
        duplicate = sock.dup()
        with self._lock:
            self._sockets.append(duplicate)
            expired = self.expired
        if expired:
            _shut(duplicate)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


class _Watched:
    """Registers each socket the connection opens with the exchange's watchdog, before the TLS handshake
    (which a slow server can stretch as well)."""

    def __init__(self, *args: Any, watchdog: _Watchdog, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watchdog = watchdog
        self._create_connection = self._create_watched

    def _create_watched(self, *args: Any, **kwargs: Any) -> socket.socket:
        sock = socket.create_connection(*args, **kwargs)  # within the connect timeout
        self._watchdog.watch(sock)
        # From here the watchdog bounds the exchange: a wait for bytes may take what is left of it (and a
        # little more, so that the watchdog's verdict is the one given).
        sock.settimeout(max(self._watchdog.remaining(), 0.0) + 0.5)
        return sock


class _WatchedConnection(_Watched, http.client.HTTPConnection):
    pass


class _WatchedTLSConnection(_Watched, http.client.HTTPSConnection):
    pass


def _watchdog_of(request: urllib.request.Request) -> _Watchdog:
    watchdog = getattr(request, "mlmon_watchdog", None)
    if not isinstance(watchdog, _Watchdog):
        raise RuntimeError("an mlmon opener serves requests sent through exchange() only")
    return watchdog


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_WatchedConnection, watchdog=_watchdog_of(req)), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, context: ssl.SSLContext | None) -> None:
        super().__init__(context=context)
        self._tls_context = context

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = functools.partial(_WatchedTLSConnection, watchdog=_watchdog_of(req))
        return self.do_open(connection, req, context=self._tls_context)


def build_opener(tls_context: ssl.SSLContext | None = None) -> urllib.request.OpenerDirector:
    """An opener for :func:`exchange`: watched connections, no redirects, proxies from the environment.
    ``tls_context`` is used for https (None: the system's certificate authorities, loaded when first needed)."""
    return urllib.request.build_opener(_HTTPHandler(), _HTTPSHandler(tls_context), NoRedirect())


def exchange(
    opener: urllib.request.OpenerDirector,
    request: urllib.request.Request,
    *,
    seconds: float,
    max_bytes: int,
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
) -> Answer:
    """Send ``request`` and read the whole answer within ``seconds``, at most ``max_bytes`` of body (after
    gzip decoding, too); one attempt to connect takes at most ``connect_timeout``. Raises TooSlow, TooLarge
    or Unreachable; never follows a redirect."""
    if seconds <= 0:
        raise TooSlow("no time left")
    with _Watchdog(seconds) as watchdog:
        request.mlmon_watchdog = watchdog  # type: ignore[attr-defined]
        try:
            try:
                response = opener.open(request, timeout=min(connect_timeout, seconds))
            except urllib.error.HTTPError as answer:  # a status outside 2xx: its body says why
                response = answer
            with response:
                body = _read_capped(response, max_bytes)
                status = int(getattr(response, "status", None) or getattr(response, "code", 0) or 0)
                reason = str(getattr(response, "reason", "") or "")
                headers = response.headers
                url = response.geturl()
        except Unreachable:  # the body ended early: the watchdog, or the server
            if watchdog.expired:
                raise TooSlow(f"no whole answer within {seconds:.3g} s") from None
            raise
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            if watchdog.expired or isinstance(_cause(exc), TimeoutError):
                raise TooSlow(f"no whole answer within {seconds:.3g} s") from None
            raise Unreachable(_reason(exc), _cause(exc)) from None
        if watchdog.expired:  # the last bytes came as the watchdog fired
            raise TooSlow(f"no whole answer within {seconds:.3g} s")
    return Answer(status, reason, headers, _decoded(body, headers, max_bytes), url)


def _read_capped(response: Any, max_bytes: int) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared and declared.strip().isdigit() and int(declared) > max_bytes:
        raise TooLarge(f"the answer is {int(declared):,} bytes, more than the {max_bytes:,} allowed")
    chunks, size = [], 0
    read = getattr(response, "read1", None) or response.read
    while chunk := read(CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(f"the answer is more than the {max_bytes:,} bytes allowed")
        chunks.append(chunk)
    # read1() ends quietly where the server closed before the Content-Length it announced.
    raw = response if isinstance(response, http.client.HTTPResponse) else getattr(response, "fp", None)
    if getattr(raw, "length", None):
        raise Unreachable("the server closed the connection in the middle of its answer")
    return b"".join(chunks)


def _decoded(body: bytes, headers: Message, max_bytes: int) -> bytes:
    if headers.get("Content-Encoding", "").strip().lower() != "gzip":
        return body
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = decoder.decompress(body, max_bytes + 1)
    except zlib.error:
        raise Unreachable("the answer says it is gzip but is not") from None
    if len(out) > max_bytes:
        raise TooLarge(f"the answer unpacks to more than the {max_bytes:,} bytes allowed")
    return out


def _cause(exc: BaseException) -> BaseException:
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        return exc.reason
    return exc


def _reason(exc: BaseException) -> str:
    """A few words on why there was no answer."""
    cause = _cause(exc)
    if isinstance(cause, ssl.SSLError):
        verify = getattr(cause, "verify_message", None)
        return f"TLS: certificate verify failed: {verify}" if verify else f"TLS: {cause.reason or cause}"
    if isinstance(cause, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(cause, http.client.IncompleteRead):
        return "the server closed the connection in the middle of its answer"
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc.reason, BaseException):
        return str(exc.reason)
    return getattr(cause, "strerror", None) or str(cause) or type(cause).__name__


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Follow no redirect: it would carry the credentials (Authorization) to wherever it points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx answer is then reported as it is
