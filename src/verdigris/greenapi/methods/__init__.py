"""Wire method handlers, one module per group of the GREEN-API documentation."""

from verdigris.greenapi.methods import account, journals, marks, planned, queues, receiving, sending  # noqa: F401
