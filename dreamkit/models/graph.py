"""Running any `nn.Module` only as far as the deepest module asked for.

First choice: trace the module with torch.fx, note the output node of each submodule's first
call, make the asked-for ones the graph's outputs and drop everything they do not need
(`truncated`). The traced graph is also made safe for dreamkit: in-place operations become
out-of-place (an in-place ReLU or `out += identity` would otherwise overwrite a captured
activation), and every ReLU becomes `switchable_relu`, so the render's redirected ReLU reaches
functional and reused ReLUs as well. Modules fx cannot trace fall back to forward hooks with
an early exit (`hooked`): each asked-for module's first output is copied (safe from later
in-place edits) and the forward pass stops as soon as the last one is in.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import fx, nn

from dreamkit.models.relu import switchable_relu

OUTPUT = ""  # the path of the root module's own output (the logits)

_OUT_OF_PLACE = {operator.iadd: operator.add, operator.isub: operator.sub,
                 operator.imul: operator.mul, operator.itruediv: operator.truediv}
_RELUS = {F.relu, torch.relu, torch.relu_, F.relu_}


class _PathTracer(fx.Tracer):
    """A tracer that remembers the output node of every submodule's first call."""

    def __init__(self) -> None:
        super().__init__()
        self.outputs: dict[str, fx.Node] = {}

    def call_module(self, m: nn.Module, forward: Callable, args: tuple, kwargs: dict):
        path = self.path_of_module(m)
        out = super().call_module(m, forward, args, kwargs)
        if path not in self.outputs and isinstance(out, fx.Proxy):
            self.outputs[path] = out.node
        return out


def _out_of_place(graph: fx.Graph, root: nn.Module) -> None:
    """Rewrite in-place operations and every ReLU (see the module docstring)."""
    for node in list(graph.nodes):
        if node.op == "call_function" and node.target in _OUT_OF_PLACE:
            node.target = _OUT_OF_PLACE[node.target]
        if node.op in ("call_function", "call_method") and node.kwargs.get("inplace"):
            node.kwargs = {**node.kwargs, "inplace": False}
        if node.op == "call_method" and node.target.endswith("_") \
                and not node.target.startswith("_") and hasattr(torch.Tensor, node.target[:-1]):
            node.target = node.target[:-1]
        is_relu = ((node.op == "call_function" and node.target in _RELUS)
                   or (node.op == "call_method" and node.target == "relu")
                   or (node.op == "call_module"
                       and isinstance(root.get_submodule(node.target), nn.ReLU)))
        if is_relu:
            node.op, node.target = "call_function", switchable_relu
            node.args, node.kwargs = node.args[:1], {}


def truncated(module: nn.Module, paths: Sequence[str]) -> fx.GraphModule:
    """A graph module returning {path: output of that submodule's first call} (the root's own
    output for `OUTPUT`), computing nothing else. Raises whatever tracing raises."""
    tracer = _PathTracer()
    graph = tracer.trace(module)
    (output,) = [node for node in graph.nodes if node.op == "output"]
    tracer.outputs[OUTPUT] = output.args[0]
    missing = [p for p in paths if not isinstance(tracer.outputs.get(p), fx.Node)]
    if missing:
        raise LookupError(f"no traced output for {', '.join(missing)}")
    graph.erase_node(output)
    graph.output({p: tracer.outputs[p] for p in paths})
    _out_of_place(graph, module)
    traced = fx.GraphModule(module, graph)
    traced.graph.eliminate_dead_code()
    traced.recompile()
    return traced


class _Stop(Exception):
    """Raised by the last hook: nothing past the deepest asked-for module is computed."""


def hooked(module: nn.Module, x: torch.Tensor, paths: Sequence[str]) -> dict[str, torch.Tensor]:
    """{path: the first output of that submodule} by forward hooks, stopping early."""
    found: dict[str, torch.Tensor] = {}
    wanted = [p for p in paths if p != OUTPUT]

    def hook(path: str) -> Callable:
        def keep(mod: nn.Module, inputs: tuple, output: object) -> None:
            if path in found or not isinstance(output, torch.Tensor):
                return
            found[path] = output.clone()  # later in-place edits must not reach it
            if len(found) == len(wanted) and OUTPUT not in paths:
                raise _Stop

        return keep

    handles = [module.get_submodule(p).register_forward_hook(hook(p)) for p in wanted]
    try:
        out = module(x)
        if OUTPUT in paths:
            found[OUTPUT] = out
    except _Stop:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return found
