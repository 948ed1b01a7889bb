"""Cart API, closed loop: Locust users walking a shopper journey, think times included.

browse -> add 1-4 products -> view -> maybe change a quantity -> maybe remove one -> summary ->
sometimes clear. Ordinary Locust users wait for each answer, so `summary.json` marks the run
`closed_loop`; its latencies are from the actual send. For arrival-rate numbers use `cart.py`.
"""

from __future__ import annotations

import random
import uuid

from locust import FastHttpUser, between, task

from harness.locust.plugin import install
from targets.cart.catalogue import DEFAULT_SIZE, product_id

install()

EDABENCH = {
    "name": "locust-cart-journeys",
    "target": "cart",
    "description": "Cart shopper journeys by closed-loop Locust users",
    "duration_s": 20,
    "warmup_s": 2,
    "timeout_s": 5,
    "target_options": {"mode": "sync", "workers": 1},
    "slo": {"p99_ms": 250, "max_error_rate": 0.001},
}


class CartShopper(FastHttpUser):
    wait_time = between(0.2, 1.0)

    @task
    def journey(self) -> None:
        cart = str(uuid.uuid4())
        self.client.get("/api/products", name="browse")
        products = {product_id(random.randint(1, DEFAULT_SIZE)) for _ in range(random.randint(1, 4))}
        for product in products:
            self.client.post(f"/api/carts/{cart}/items", json={"productId": product, "quantity": 1}, name="add")
        self.client.get(f"/api/carts/{cart}", name="view")
        if random.random() < 0.4:
            self.client.patch(f"/api/carts/{cart}/items/{min(products)}", json={"quantity": 3}, name="update")
        if len(products) > 1 and random.random() < 0.3:
            self.client.delete(f"/api/carts/{cart}/items/{max(products)}", name="remove")
        self.client.get(f"/api/carts/{cart}/summary", name="summary")
        if random.random() < 0.1:
            self.client.delete(f"/api/carts/{cart}/items", name="clear")
