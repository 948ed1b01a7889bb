"""Cart API, open model: shopper actions arrive at the spec's rate, each measured from its intended time.

Each user owns a few carts; an arrival is one request on one of them (add, view, summary, update,
remove, history, browse), weighted like the cart-smoke scenario. Reads and changes go only to
carts and lines whose add has been answered; writes carry no If-Match, so concurrent arrivals on
one cart are merged by the service, never refused. Journeys as a closed
loop (an ordinary Locust user) are in `cart_journeys.py`.
Run: `edabench locust cart --users 10` (starts PostgreSQL, Redis and the cart service).
"""

from __future__ import annotations

import random
import uuid

from locust import task

from harness.locust.users import OpenModelHttpUser
from targets.cart.catalogue import DEFAULT_SIZE, product_id

EDABENCH = {
    "name": "locust-cart",
    "target": "cart",
    "description": "Cart shopper actions as open-model arrivals",
    "duration_s": 20,
    "warmup_s": 2,
    "timeout_s": 5,
    "rate": {"rate": 100},
    "target_options": {"mode": "sync", "workers": 1},
    "slo": {"p99_ms": 250, "max_error_rate": 0.001, "min_rate_ratio": 0.95},
}
CARTS_PER_USER = 5


class CartOpen(OpenModelHttpUser):
    def on_start(self) -> None:
        self.carts = [str(uuid.uuid4()) for _ in range(CARTS_PER_USER)]
        self.lines: dict[str, set[str]] = {c: set() for c in self.carts}

    def _cart(self) -> str | None:
        """A cart that exists (an add was answered), or None before the first one."""
        filled = [c for c in self.carts if self.lines[c]]
        return random.choice(filled) if filled else None

    @task(30)
    def add(self) -> None:
        cart, product = random.choice(self.carts), product_id(random.randint(1, DEFAULT_SIZE))
        resp = self.client.post(f"/api/carts/{cart}/items", json={"productId": product, "quantity": 1}, name="add")
        if resp.status_code < 300:
            self.lines[cart].add(product)

    @task(20)
    def view(self) -> None:
        cart = self._cart()
        if cart is None:
            return self.add()
        self.client.get(f"/api/carts/{cart}", name="view")
        return None

    @task(15)
    def browse(self) -> None:
        self.client.get("/api/products", name="browse")

    @task(10)
    def summary(self) -> None:
        cart = self._cart()
        if cart is None:
            return self.add()
        self.client.get(f"/api/carts/{cart}/summary", name="summary")
        return None

    @task(12)
    def update(self) -> None:
        cart = self._cart()
        if cart is None or not self.lines[cart]:
            return self.add()
        product = random.choice(sorted(self.lines[cart]))
        self.client.patch(f"/api/carts/{cart}/items/{product}", json={"quantity": random.randint(1, 5)},
                          name="update")
        return None

    @task(7)
    def remove(self) -> None:
        cart = self._cart()
        if cart is None or len(self.lines[cart]) < 2:  # keep one line: the cart stays readable
            return self.add()
        product = self.lines[cart].pop()
        with self.client.delete(f"/api/carts/{cart}/items/{product}", name="remove",
                                catch_response=True) as resp:
            if resp.status_code == 404:  # a concurrent arrival removed it first: not the service's fault
                resp.success()
        return None

    @task(3)
    def history(self) -> None:
        cart = self._cart()
        if cart is None:
            return self.add()
        self.client.get(f"/api/carts/{cart}/history", name="history")
        return None
