"""HTTP handlers of the gateway, one module per resource, plus middlewares and typed app keys."""
