"""Hardened parsing of BPMN/XML, which is untrusted input.

No DTDs (so no entity expansion: no XXE, no billion laughs), no network, a size limit.
"""

from __future__ import annotations

import re

from lxml import etree

MAX_BPMN_BYTES = 2 * 1024 * 1024
_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_WIDE_ENCODINGS = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


class UnsafeXMLError(ValueError):
    """The document is too large, not well-formed, or declares a DTD or entities."""


def _hardened_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def _as_utf8(data: bytes) -> bytes:
    """The document re-encoded as UTF-8 when it is in UTF-16 or UTF-32 (which the byte
    search for declarations would otherwise miss), else unchanged."""
    head = data[:4]
    for bom, encoding in _WIDE_ENCODINGS:
        if head.startswith(bom):
            return data.decode(encoding, errors="replace").encode("utf-8")
    if b"\x00" in head:
        encoding = "utf-16-le" if head[1:2] == b"\x00" else "utf-16-be"
        return data.decode(encoding, errors="replace").encode("utf-8")
    return data


def parse_untrusted_xml(source: bytes | str) -> etree._ElementTree:
    """Parse `source` or raise UnsafeXMLError with a message a modeller can act on."""
    data = source.encode("utf-8") if isinstance(source, str) else source
    if len(data) > MAX_BPMN_BYTES:
        raise UnsafeXMLError(
            f"the file is {len(data):,} bytes; the limit is {MAX_BPMN_BYTES:,} bytes"
        )
    if _DOCTYPE.search(data) or _DOCTYPE.search(_as_utf8(data)):
        raise UnsafeXMLError("DTDs and entity declarations are not allowed in BPMN files")
    try:
        root = etree.fromstring(data, parser=_hardened_parser())
    except etree.XMLSyntaxError as exc:
        raise UnsafeXMLError(f"not well-formed XML: {exc}") from None
    tree = root.getroottree()
    if tree.docinfo.doctype:
        raise UnsafeXMLError("DTDs are not allowed in BPMN files")
    return tree
