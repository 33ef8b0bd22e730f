"""TFLite Micro's op resolver for a model: which MicroMutableOpResolver Add method registers each builtin op
(read from the op table, tinyq.engine.ops)."""

from __future__ import annotations

from .engine import Graph, tflm_method
from .errors import UnsupportedOpError
from .render import camel


def resolver_methods(graph: Graph) -> tuple[str, ...]:
    """The Add methods the model needs, distinct, in first-use order; an op TFLM cannot register raises."""
    methods = []
    for op in graph.operators:
        method = tflm_method(op.code)
        if method is None:
            raise UnsupportedOpError(f"{graph.where(op)}: TFLM's MicroMutableOpResolver has no Add method for it")
        if method not in methods:
            methods.append(method)
    return tuple(methods)


def resolver_values(graph: Graph, ident: str) -> dict:
    """Plain values for templates/op_resolver.h.j2: identifier, resolver type name, op count, methods."""
    methods = resolver_methods(graph)
    type_name = f"{camel(ident)}OpResolver"
    return dict(ident=ident, guard=f"{ident.upper()}_OP_RESOLVER_H_", type_name=type_name, op_count=len(methods),
                methods=list(methods))
