#!/usr/bin/env python3
"""Import circles between the crate's top-level modules (src/<module>/ or src/<module>.rs).

A module names another when its code (outside its `#[cfg(test)]` part) says `crate::<other>`.
Any circle among those names is printed with the files that make each step, and the exit
status is 1; `make test` runs this first. main.rs, lib.rs and src/bin/ sit above everything
and are left out.
"""
import collections
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_of(path):
    parts = os.path.relpath(path, ROOT).split(os.sep)
    return parts[0][:-3] if len(parts) == 1 else parts[0]


def graph():
    top = {n[:-3] if n.endswith(".rs") else n for n in os.listdir(ROOT)}
    edges, where = collections.defaultdict(set), collections.defaultdict(set)
    for folder, _, files in os.walk(ROOT):
        for f in files:
            path = os.path.join(folder, f)
            m = module_of(path)
            if not f.endswith(".rs") or m in ("main", "lib", "bin"):
                continue
            text = open(path, encoding="utf-8").read().split("#[cfg(test)]")[0]
            named = set(re.findall(r"crate::([a-z_]+)", text))
            for group in re.findall(r"crate::\{([^}]*)\}", text):
                named |= set(re.findall(r"\b([a-z_]+)\b", group))
            for other in named & top - {m, "main", "lib", "bin"}:
                edges[m].add(other)
                where[(m, other)].add(os.path.relpath(path, os.path.join(ROOT, "..")))
    return top, edges, where


def circles(nodes, edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main():
    nodes, edges, where = graph()
    found = circles(nodes, edges)
    for comp in found:
        print("import circle: " + " <-> ".join(comp))
        for a in comp:
            for b in sorted(edges[a] & set(comp)):
                print(f"    {a} -> {b}: {', '.join(sorted(where[(a, b)]))}")
    if found:
        return 1
    print(f"no import circle among {len(nodes) - 3} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
