"""Cart commands, one module each: the command, its validator (input -> command) and its
decision (cart state + command -> event), as the seed's add-item/remove-item/... folders."""

from targets.cart.commands.add_item import AddItem
from targets.cart.commands.clear_cart import ClearCart
from targets.cart.commands.remove_item import RemoveItem
from targets.cart.commands.update_quantity import UpdateQuantity

Command = AddItem | RemoveItem | UpdateQuantity | ClearCart

__all__ = ["AddItem", "ClearCart", "Command", "RemoveItem", "UpdateQuantity"]
