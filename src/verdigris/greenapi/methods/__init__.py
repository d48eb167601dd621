"""Wire method handlers, one module per group of the GREEN-API documentation."""

from verdigris.greenapi.methods import (  # noqa: F401
    account,
    calls,
    files,
    groups,
    journals,
    marks,
    planned,
    queues,
    receiving,
    sending,
    service,
    statuses,
)
