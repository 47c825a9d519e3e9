"""Merge the junit files of `make test`'s two pytest runs (two workers, then the serial tests)
into the one file CI counts: `python -m tests.merge_junit OUT IN...`."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET


def merge(out: str, inputs: list[str]) -> None:
    merged = ET.Element("testsuites")
    for path in inputs:
        root = ET.parse(path).getroot()
        merged.extend([root] if root.tag == "testsuite" else list(root))
    ET.ElementTree(merged).write(out, encoding="utf-8", xml_declaration=True)


if __name__ == "__main__":
    merge(sys.argv[1], sys.argv[2:])
