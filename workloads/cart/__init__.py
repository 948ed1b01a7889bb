"""Cart workload: shopper sessions against the cart target, with a shadow model to verify."""
