#!/usr/bin/env python3
"""Holds the code to the layer boundaries its CMake files declare (see cmake/TransnotesLayer.cmake).

For every folder src/<layer>/ built with transnotes_layer(...):
  - a library source (not *_test.cpp) includes headers of another layer only when DEPS names that
    layer (transnotes_<other>), and only headers that layer lists in PUBLIC_HEADERS;
  - a test (*_test.cpp) may also include the layers its TEST_DEPS name, and their
    TEST_SUPPORT_HEADERS;
  - domain depends on no other layer (dependencies point inward);
  - every file of a layer opens only its own namespace: transnotes::<layer> (or one nested in
    it); domain's is transnotes itself.
src/app (the wiring) and bench/ are held to the same rule with the libraries they link.
Exit 0: clean. Exit 1: each violation listed.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[1])
SRC = ROOT / "src"
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z0-9_]+)/([A-Za-z0-9_./]+)"', re.M)
KEYWORDS = ("PUBLIC_HEADERS", "TEST_SUPPORT_HEADERS", "DEPS", "TEST_DEPS")


def parse_layer_call(text):
    m = re.search(r"transnotes_layer\(([^)]*)\)", text, re.S)
    if not m:
        return None
    words = re.sub(r"#[^\n]*", "", m.group(1)).split()
    decl = {k: [] for k in KEYWORDS}
    decl["name"] = words[0]
    current = None
    for w in words[1:]:
        if w in KEYWORDS:
            current = w
        elif current:
            decl[current].append(w)
    return decl


def layer_names(targets):
    return {t[len("transnotes_"):] for t in targets if t.startswith("transnotes_")}


def main():
    layers = {}
    for cml in sorted(SRC.glob("*/CMakeLists.txt")):
        text = cml.read_text()
        decl = parse_layer_call(text)
        folder = cml.parent.name
        if decl is None:
            # src/app: the wiring; nothing may include it, it may include what it links.
            links = re.findall(r"target_link_libraries\(transnotes_app\s+PUBLIC([^)]*)\)", text, re.S)
            deps = layer_names(" ".join(links).split())
            layers[folder] = {"deps": deps, "test_deps": set(), "public": set(), "support": set()}
            continue
        if decl["name"] != folder:
            print(f"{cml}: transnotes_layer({decl['name']}) in folder {folder}")
            return 1
        layers[folder] = {
            "deps": layer_names(decl["DEPS"]),
            "test_deps": layer_names(decl["TEST_DEPS"]),
            "public": set(decl["PUBLIC_HEADERS"]),
            "support": set(decl["TEST_SUPPORT_HEADERS"]),
        }

    problems = []
    if layers.get("domain", {}).get("deps"):
        problems.append(f"src/domain/CMakeLists.txt: domain must not depend on {sorted(layers['domain']['deps'])}")

    def check(path, allowed_layers, allow_support):
        for m in INCLUDE.finditer(path.read_text()):
            other, header = m.group(1), m.group(2)
            if other not in layers:
                continue  # not a layer (e.g. "e2e/harness.h" in tests/)
            if other == path.parent.name and path.parent.parent == SRC:
                continue  # a layer's own headers, public or internal
            where = f"{path.relative_to(ROOT)}: #include \"{other}/{header}\""
            if other not in allowed_layers:
                problems.append(f"{where}: layer '{other}' is not declared as a dependency")
            elif header in layers[other]["public"]:
                continue
            elif allow_support and header in layers[other]["support"]:
                continue
            else:
                problems.append(f"{where}: not a public header of '{other}' (internal to that layer)")

    namespace_re = re.compile(r"^namespace (transnotes[A-Za-z0-9_:]*) \{", re.M)
    for folder in layers:
        own = "transnotes" if folder == "domain" else f"transnotes::{folder}"
        for path in sorted((SRC / folder).glob("*.[ch]*")):
            for m in namespace_re.finditer(path.read_text()):
                name = m.group(1)
                if name != own and not name.startswith(own + "::"):
                    problems.append(f"{path.relative_to(ROOT)}: opens namespace {name}, not {own}")

    for folder, decl in layers.items():
        for path in sorted((SRC / folder).glob("*.[ch]*")):
            if path.suffix not in (".h", ".cpp"):
                continue
            is_test = path.name.endswith("_test.cpp") or path.name.endswith("_test_support.h")
            allowed = set(decl["deps"])
            if is_test:
                allowed |= decl["test_deps"]
            check(path, allowed, allow_support=is_test)

    bench_cml = ROOT / "bench" / "mt" / "CMakeLists.txt"
    bench_links = layer_names(re.findall(r"transnotes_[a-z]+", bench_cml.read_text())) if bench_cml.exists() else set()
    for path in sorted((ROOT / "bench").rglob("*.cpp")):
        check(path, bench_links, allow_support=False)

    for p in problems:
        print(p)
    if problems:
        print(f"layering_check: {len(problems)} violation(s)")
        return 1
    print(f"layering_check: OK, {len(layers)} layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
