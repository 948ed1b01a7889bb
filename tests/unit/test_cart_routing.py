"""The route table of the cart API."""

from __future__ import annotations

import pytest

from targets.cart.client import KINDS, request_for
from targets.cart.routing import match

CID = "00000000-0000-0000-0000-000000000003"


@pytest.mark.parametrize(
    ("method", "path", "route", "params"),
    [
        ("GET", f"/api/carts/{CID}", "get_cart", (CID,)),
        ("GET", f"/api/carts/{CID}/summary", "get_summary", (CID,)),
        ("GET", f"/api/carts/{CID}/history", "get_history", (CID,)),
        ("POST", f"/api/carts/{CID}/items", "add_item", (CID,)),
        ("DELETE", f"/api/carts/{CID}/items", "clear_cart", (CID,)),
        ("PATCH", f"/api/carts/{CID}/items/p-0001", "update_quantity", (CID, "p-0001")),
        ("DELETE", f"/api/carts/{CID}/items/p-0001", "remove_item", (CID, "p-0001")),
        ("GET", "/health", "health", ()),
        ("GET", "/api/products", "list_products", ()),
    ],
)
def test_routes_match(method: str, path: str, route: str, params: tuple[str, ...]) -> None:
    m = match(method, path)
    assert (m.route, m.params) == (route, params)


def test_unknown_path_is_404_and_wrong_method_405() -> None:
    assert match("GET", "/api/nothing").status == 404
    assert match("GET", f"/api/carts/{CID}/items/p-1/extra").status == 404
    assert match("POST", f"/api/carts/{CID}").status == 405


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_driver_op_kind_maps_to_a_route(kind: str) -> None:
    method, path, _ = request_for(kind, {"cart": CID, "product": "p-0001", "quantity": 1})
    assert match(method, path.partition("?")[0]).route is not None
