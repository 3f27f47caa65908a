"""A traffic generator for a running stack: shoppers reading, ordering and editing products.

Threads send requests through the proxy the way clients would: anonymous reads of
products, categories and stock; orders placed by a customer (the monolith reserves
stock in the same transaction); and, once :meth:`Traffic.allow_writes` is called,
price edits of a set of products (the catalog's writes, routed to the service once
the context is in dual_write). Every write the server acknowledged is remembered so
the caller can prove none was lost.

    with Traffic(proxy_url, token=token, products=2000) as traffic:
        ...
        traffic.allow_writes()
    traffic.acked_orders, traffic.acked_prices   # what must be in the databases
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType

import httpx

__all__ = ["Traffic", "TrafficStats", "not_sent", "writable_products"]

READ_TIMEOUT = 10.0
BACKOFF = 0.2  # seconds a thread waits after a failed request


def writable_products(products: int, every: int = 7) -> list[int]:
    """The product ids the generator edits (every ``every``-th): nobody else writes them."""
    return list(range(every, products + 1, every))


@dataclass
class TrafficStats:
    """What was sent and how it was answered: ``(kind, outcome)`` -> count."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, kind: str, outcome: str) -> None:
        with self.lock:
            self.counts[(kind, outcome)] += 1

    def total(self, outcome: str | None = None) -> int:
        with self.lock:
            return sum(n for (_, o), n in self.counts.items() if outcome is None or o == outcome)

    def by_kind(self) -> dict[str, dict[str, int]]:
        with self.lock:
            table: dict[str, dict[str, int]] = {}
            for (kind, outcome), count in sorted(self.counts.items()):
                table.setdefault(kind, {})[outcome] = count
            return table


def _outcome(status: int) -> str:
    return "ok" if 200 <= status < 300 else f"{status // 100}xx"


def not_sent(response: httpx.Response) -> bool:
    """True when the proxy says the request never reached an upstream (so it changed nothing).

    A breaker that is open, a refused connection, credentials that could not be checked.
    """
    if response.status_code not in (502, 503):
        return False
    try:
        error = response.json()
    except ValueError:
        return False
    if not isinstance(error, dict):
        return False
    code, detail = str(error.get("code", "")), str(error.get("detail", "")).lower()
    return code in ("breaker_open", "auth_unavailable") or detail.startswith("could not connect")


class Traffic:
    """Reader, order and writer threads against ``base_url`` until :meth:`stop`.

    Several URLs (proxy replicas): each thread's client takes the next one in turn.
    """

    def __init__(
        self,
        base_url: str | list[str],
        *,
        token: str,
        products: int,
        categories: int = 20,
        readers: int = 2,
        seed: int = 7,
    ) -> None:
        self.base_urls = [base_url] if isinstance(base_url, str) else list(base_url)
        self._next_url = itertools.count()
        self.token = token
        self.products = products
        self.categories = categories
        self.readers = readers
        self.stats = TrafficStats()
        self.acked_orders: list[int] = []
        self.acked_prices: dict[int, int] = {}  # product id -> last acknowledged price, cents
        self.unknown_prices: set[int] = set()  # writes without an answer: outcome unknown
        self.writable = writable_products(products)
        self._writes = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._writing = threading.Lock()  # held for each price edit, request to bookkeeping
        self._threads: list[threading.Thread] = []
        self._seed = seed

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Traffic:
        workers = [self._reader] * self.readers + [self._orders, self._price_writer]
        for index, target in enumerate(workers):
            thread = threading.Thread(
                target=target, args=(random.Random(self._seed + index),), daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def allow_writes(self) -> None:
        """Start editing prices (from now on the catalog's writes go to its service)."""
        self._writes.set()

    def pause_writes(self) -> None:
        """Stop editing prices; returns when no edit is in flight any more."""
        self._writes.clear()
        with self._writing:
            pass

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=READ_TIMEOUT + 5)

    def __enter__(self) -> Traffic:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what the threads do -----------------------------------------------------------

    def _client(self, auth: bool = False) -> httpx.Client:
        """A client on the next proxy: the threads spread over every proxy replica."""
        headers = {"Authorization": f"Token {self.token}"} if auth else {}
        url = self.base_urls[next(self._next_url) % len(self.base_urls)]
        return httpx.Client(base_url=url, headers=headers, timeout=READ_TIMEOUT)

    def _send(
        self, client: httpx.Client, kind: str, method: str, path: str, **kw: object
    ) -> httpx.Response | None:
        try:
            response = client.request(method, path, **kw)  # type: ignore[arg-type]
        except httpx.HTTPError:
            self.stats.add(kind, "no answer")
            self._stop.wait(BACKOFF)
            return None
        self.stats.add(kind, _outcome(response.status_code))
        if response.status_code >= 500:
            self._stop.wait(BACKOFF)  # like a polite client: back off, then try again
        return response

    def _reader(self, rng: random.Random) -> None:
        with self._client() as client:
            while not self._stop.is_set():
                product = rng.randint(1, self.products)
                choice = rng.random()
                if choice < 0.6:
                    self._send(client, "product", "GET", f"/api/v1/products/{product}/")
                elif choice < 0.7:
                    page = rng.randint(1, 20)
                    self._send(client, "product list", "GET", f"/api/v1/products/?page={page}")
                elif choice < 0.88:
                    category = rng.randint(1, self.categories)
                    self._send(client, "category", "GET", f"/api/v1/categories/{category}/")
                elif choice < 0.95:
                    self._send(client, "category list", "GET", "/api/v1/categories/")
                else:
                    self._send(client, "stock", "GET", f"/api/v1/stock/?product={product}")

    def _orders(self, rng: random.Random) -> None:
        with self._client(auth=True) as client:
            while not self._stop.wait(0.05):
                lines = [{"product": rng.randint(1, self.products), "quantity": 1}]
                body = {"lines": lines, "payment_token": "tok_visa"}
                response = self._send(client, "order", "POST", "/api/v1/orders/", json=body)
                if response is not None and response.status_code == 201:
                    with self._lock:
                        self.acked_orders.append(int(response.json()["id"]))

    def _price_writer(self, rng: random.Random) -> None:
        with self._client(auth=True) as client:
            while not self._stop.is_set():
                if not self._writes.wait(0.2):
                    continue
                with self._writing:
                    if self._writes.is_set() and not self._stop.is_set():
                        self._edit_price(client, rng)
                self._stop.wait(0.05)

    def _edit_price(self, client: httpx.Client, rng: random.Random) -> None:
        product = rng.choice(self.writable)
        cents = rng.randint(100, 99_999)
        body = {"price": f"{cents / 100:.2f}"}
        response = self._send(
            client, "price edit", "PATCH", f"/api/v1/products/{product}/", json=body
        )
        with self._lock:
            if response is not None and not_sent(response):
                pass  # nothing reached the service: nothing to account for
            elif response is None or response.status_code >= 500:
                self.unknown_prices.add(product)  # may or may not have been applied
            elif response.status_code == 200:
                self.acked_prices[product] = cents

    # -- reading what happened ---------------------------------------------------------

    def snapshot(self) -> tuple[list[int], dict[int, int], set[int]]:
        """Acknowledged orders, last acknowledged price per product, writes of unknown outcome."""
        with self._lock:
            return list(self.acked_orders), dict(self.acked_prices), set(self.unknown_prices)

    def rate(self) -> float:
        """Requests answered per second since the start."""
        elapsed = max(time.monotonic() - self.stats.started, 1e-6)
        return self.stats.total() / elapsed
