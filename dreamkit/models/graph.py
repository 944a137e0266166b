"""Running any `nn.Module` only as far as the deepest layer asked for.

First choice: trace the module with torch.fx, note the output node of each submodule's first
call, make the asked-for ones the graph's outputs and drop everything they do not need
(`truncated`). A layer is a submodule path or, for modules built from functional calls, the
name of a traced node (`conv2d_1`, `relu`). The traced graph is made safe for dreamkit without
changing what it computes: every in-place operation becomes out-of-place and the later uses of
the tensor it modified read its result instead (so `x.clamp_(min=0)` whose result is not
assigned still clamps, and a captured activation is never overwritten), and every ReLU becomes
`switchable_relu`, so the render's redirected ReLU reaches functional and reused ReLUs as well.
Modules fx cannot trace fall back to forward hooks with an early exit (`hooked`): each
asked-for module's first output is copied (safe from later in-place edits) and the forward pass
stops as soon as the last one is in. The user's module itself is never changed.
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
                 operator.imul: operator.mul, operator.itruediv: operator.truediv,
                 operator.ifloordiv: operator.floordiv, operator.ipow: operator.pow,
                 operator.iand: operator.and_, operator.ior: operator.or_}
_RELUS = {F.relu, torch.relu, torch.relu_, F.relu_}
_FUNCTIONAL_IN_PLACE = {torch.relu_: torch.relu, F.relu_: F.relu}


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


def _mutated(node: fx.Node, root: nn.Module) -> fx.Node | None:
    """The tensor an in-place operation writes to (its first argument), or None."""
    first = node.args[0] if node.args and isinstance(node.args[0], fx.Node) else None
    if node.op == "call_function":
        in_place = (node.target in _OUT_OF_PLACE or node.target in _FUNCTIONAL_IN_PLACE
                    or bool(node.kwargs.get("inplace")))
    elif node.op == "call_method":
        name = str(node.target)
        in_place = ((name.endswith("_") and not name.startswith("_")
                     and hasattr(torch.Tensor, name[:-1])) or bool(node.kwargs.get("inplace")))
    elif node.op == "call_module":
        in_place = bool(getattr(root.get_submodule(str(node.target)), "inplace", False))
    else:
        in_place = False
    return first if in_place else None


def _functionalize(graph: fx.Graph, root: nn.Module) -> None:
    """In-place operations out of place, their results read wherever the modified tensor was
    read after them; in-place modules get a copy of their input to work on."""
    order = {node: i for i, node in enumerate(graph.nodes)}
    for node in list(graph.nodes):
        target = _mutated(node, root)
        if target is None:
            continue
        if node.op == "call_function":
            node.target = _OUT_OF_PLACE.get(node.target,
                                            _FUNCTIONAL_IN_PLACE.get(node.target, node.target))
            if node.kwargs.get("inplace"):
                node.kwargs = {**node.kwargs, "inplace": False}
        elif node.op == "call_method":
            if str(node.target).endswith("_"):
                node.target = str(node.target)[:-1]
            if node.kwargs.get("inplace"):
                node.kwargs = {**node.kwargs, "inplace": False}
        else:  # a module that works in place: let it work on a copy
            with graph.inserting_before(node):
                clone = graph.call_method("clone", (target,))
            node.args = (clone, *node.args[1:])
            order[clone] = order[node] - 0.5
        for user in list(target.users):
            if user is not node and order.get(user, -1) > order[node]:
                user.replace_input_with(target, node)


def _switchable_relus(graph: fx.Graph, root: nn.Module) -> None:
    for node in graph.nodes:
        is_relu = ((node.op == "call_function" and node.target in _RELUS)
                   or (node.op == "call_method" and node.target == "relu")
                   or (node.op == "call_module"
                       and isinstance(root.get_submodule(node.target), nn.ReLU)))
        if is_relu:
            node.op, node.target = "call_function", switchable_relu
            node.args, node.kwargs = node.args[:1], {}


def _traced(module: nn.Module) -> tuple[fx.Graph, dict[str, fx.Node]]:
    """The module's graph, made safe (see the module docstring), and {layer: node}: submodule
    paths (first call), node names, and `OUTPUT`."""
    tracer = _PathTracer()
    graph = tracer.trace(module)
    _functionalize(graph, module)
    _switchable_relus(graph, module)
    points: dict[str, fx.Node] = {node.name: node for node in graph.nodes
                                  if node.op in ("call_function", "call_method")}
    points.update(tracer.outputs)
    (output,) = [node for node in graph.nodes if node.op == "output"]
    points[OUTPUT] = output.args[0]  # type: ignore[assignment]  # any structure of nodes
    return graph, points


def _missing(points: dict[str, fx.Node], paths: Sequence[str]) -> None:
    missing = [p for p in paths if p != OUTPUT and not isinstance(points.get(p), fx.Node)]
    if missing:
        raise LookupError(f"no traced output for {', '.join(missing)}")


def truncated(module: nn.Module, paths: Sequence[str]) -> fx.GraphModule:
    """A graph module returning {path: output of that layer's first call} (the root's own
    output for `OUTPUT`), computing nothing else. Raises whatever tracing raises."""
    graph, points = _traced(module)
    _missing(points, paths)
    (output,) = [node for node in graph.nodes if node.op == "output"]
    graph.erase_node(output)
    graph.output({p: points[p] for p in paths})
    traced = fx.GraphModule(module, graph)
    traced.graph.eliminate_dead_code()
    traced.recompile()
    return traced


def spliced(module: nn.Module, path: str) -> fx.GraphModule:
    """A graph module `(x, acts) -> output` where the layer `path` outputs `acts`."""
    graph, points = _traced(module)
    _missing(points, [path])
    last_input = [node for node in graph.nodes if node.op == "placeholder"][-1]
    with graph.inserting_after(last_input):
        given = graph.placeholder("dreamkit_acts")
    points[path].replace_all_uses_with(given)
    traced = fx.GraphModule(module, graph)
    traced.graph.eliminate_dead_code()
    traced.recompile()
    return traced


def node_shapes(module: nn.Module, x: torch.Tensor) -> dict[str, tuple[tuple[int, ...], str]]:
    """{node name: (output shape, the function or method it calls)} of the traced module's
    functional calls, in graph order (for modules built without submodules)."""
    graph, _ = _traced(module)
    found: dict[str, tuple[tuple[int, ...], str]] = {}
    traced = fx.GraphModule(module, graph)
    interpreter = fx.Interpreter(traced)
    original = interpreter.run_node

    def run_node(node: fx.Node):
        out = original(node)
        if node.op in ("call_function", "call_method") and isinstance(out, torch.Tensor):
            what = node.target if isinstance(node.target, str) else node.target.__name__
            found[node.name] = (tuple(out.shape), what)
        return out

    interpreter.run_node = run_node  # type: ignore[method-assign]
    with torch.no_grad():
        interpreter.run(x)
    return found


class _Stop(Exception):
    """Raised by the last hook: nothing past the deepest asked-for module is computed."""


def hooked(module: nn.Module, x: torch.Tensor, paths: Sequence[str]) -> dict[str, object]:
    """{path: the first output of that submodule} by forward hooks, stopping early."""
    found: dict[str, object] = {}
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
