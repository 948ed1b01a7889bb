"""The product catalogue: a deterministic list of products with prices in cents.

Deterministic so that workloads know valid product ids (`p-0001`...) without a lookup and the
table can be re-seeded idempotently by every service start.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_SIZE = 500


@dataclass(frozen=True, slots=True)
class Product:
    product_id: str
    name: str
    price_cents: int


def product_id(n: int) -> str:
    return f"p-{n:04d}"


def price_of(n: int) -> int:
    """A spread of prices from 1.99 to 99.98, stable for a product number."""
    return 199 + (n * 7919) % 9800


def build(size: int = DEFAULT_SIZE) -> dict[str, Product]:
    return {product_id(n): Product(product_id(n), f"Product {n}", price_of(n)) for n in range(1, size + 1)}
