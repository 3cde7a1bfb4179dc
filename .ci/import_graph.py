"""Print srlive's import graph by layer: layer -> layer edges (with counts) and import cycles.

    python .ci/import_graph.py            # layer edges, package cycles, module cycles
    python .ci/import_graph.py --modules  # also every module -> module edge between layers
    python .ci/import_graph.py --without-bench  # leave out the benchmark modules (bench*.py)

A "layer" here is a top-level part of srlive (``srlive.recon``, ``srlive.cli``, ...) or the
``simulators`` package. The graph is grimp's (the one import-linter checks, from
``.importlinter``), every import included (function-level and ``TYPE_CHECKING`` ones too).
Cycles are the strongly connected components of the module graph (and of the layer graph).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict

import grimp

ROOTS = ("srlive", "simulators")


def layer_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "srlive" and len(parts) > 1 else parts[0]


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Components of more than one node (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", action="store_true", help="list module edges between layers")
    parser.add_argument(
        "--without-bench", action="store_true", help="leave out the benchmark modules (bench*)"
    )
    args = parser.parse_args()
    graph = grimp.build_graph(*ROOTS, cache_dir=None)
    module_edges: dict[str, set[str]] = defaultdict(set)
    layer_edges: Counter[tuple[str, str]] = Counter()
    detail: dict[tuple[str, str], list[str]] = defaultdict(list)

    def kept(module: str) -> bool:
        return not (args.without_bench and module.rsplit(".", 1)[-1].startswith("bench"))

    for importer in sorted(filter(kept, graph.modules)):
        for imported in sorted(filter(kept, graph.find_modules_directly_imported_by(importer))):
            module_edges[importer].add(imported)
            a, b = layer_of(importer), layer_of(imported)
            if a != b:
                layer_edges[a, b] += 1
                detail[a, b].append(f"{importer} -> {imported}")
    print(f"modules: {len(graph.modules)}  imports: {sum(map(len, module_edges.values()))}")
    print("\nlayer -> layer (imports):")
    for (a, b), n in sorted(layer_edges.items()):
        back = " <-> (both ways)" if (b, a) in layer_edges else ""
        print(f"  {a} -> {b}: {n}{back}")
        if args.modules:
            for line in detail[a, b]:
                print(f"      {line}")
    layers: dict[str, set[str]] = defaultdict(set)
    for a, b in layer_edges:
        layers[a].add(b)
    print("\nlayer cycles:")
    for component in strongly_connected(layers) or [["none"]]:
        print("  " + " <-> ".join(component))
    print("\nmodule cycles:")
    for component in strongly_connected(module_edges) or [["none"]]:
        print("  " + " <-> ".join(component))
    return 0


if __name__ == "__main__":
    sys.exit(main())
