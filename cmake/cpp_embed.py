"""What the build scripts that embed files in the binary share (src/apidocs/embed_assets.py,
src/webapp/bundle_assets.py): bytes as a C++ string literal, and writing a generated source."""
import os


def cpp_literal(data: bytes) -> str:
    """One string literal (as adjacent pieces) holding exactly `data`, NULs included."""
    pieces, line = [], []
    for byte in data:
        if byte in (0x22, 0x5C):  # " and \
            line.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F and byte != 0x3F:  # printable; '?' escaped against trigraphs
            line.append(chr(byte))
        else:
            line.append(f"\\{byte:03o}")  # three octal digits: never swallows a following digit
        if len(line) >= 120:
            pieces.append('"' + "".join(line) + '"')
            line = []
    pieces.append('"' + "".join(line) + '"')
    return "\n    ".join(pieces)


def write_source(output: str, lines: list) -> None:
    """Writes the generated source whole or not at all: a failed run must not leave a source the
    next build trusts."""
    temporary = output + ".tmp"
    with open(temporary, "w", encoding="ascii") as f:
        f.write("\n".join(lines))
    os.replace(temporary, output)
