"""A small stdlib HTML reader for page tests: elements by id, their text, scripts."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "wbr",
}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    parent: Element | None = None
    children: list[Element] = field(default_factory=list)
    text_parts: list[str] = field(default_factory=list)
    # Text and child elements in document order.
    nodes: list[str | Element] = field(default_factory=list, repr=False)

    @property
    def text(self) -> str:
        """All text inside, in document order, whitespace collapsed."""
        parts: list[str] = []

        def walk(element: Element) -> None:
            for node in element.nodes:
                if isinstance(node, str):
                    parts.append(node)
                else:
                    walk(node)

        walk(self)
        return " ".join(" ".join(parts).split())

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Element]:
        found: list[Element] = []

        def walk(element: Element) -> None:
            for child in element.children:
                if (tag is None or child.tag == tag) and all(
                    child.attrs.get(k.rstrip("_")) == v for k, v in attrs.items()
                ):
                    found.append(child)
                walk(child)

        walk(self)
        return found


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("root", {})
        self.current = self.root
        self.by_id: dict[str, Element] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs}, self.current)
        self.current.children.append(element)
        self.current.nodes.append(element)
        if "id" in element.attrs:
            assert element.attrs["id"] not in self.by_id, f"duplicate id {element.attrs['id']}"
            self.by_id[element.attrs["id"]] = element
        if tag not in _VOID:
            self.current = element

    def handle_endtag(self, tag: str) -> None:
        node: Element | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.text_parts.append(data)
        self.current.nodes.append(data)


@dataclass
class Page:
    root: Element
    by_id: dict[str, Element]

    def get(self, element_id: str) -> Element:
        assert element_id in self.by_id, f"no element with id {element_id!r}"
        return self.by_id[element_id]


def parse_page(html: str) -> Page:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return Page(builder.root, builder.by_id)
