"""The ALTO v4 XML schema, vendored (docs/development.md), loaded without touching the network."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from lxml import etree

SCHEMAS = Path(__file__).resolve().parent
ALTO_XSD = SCHEMAS / "alto-4-4.xsd"
# alto-4-4.xsd imports this by its URL; the resolver below maps it to the copy here
XLINK_URL = "http://www.loc.gov/standards/xlink/xlink.xsd"


class _LocalSchemas(etree.Resolver):
    """xlink.xsd from this folder; any other URL on the network is refused, never fetched."""

    def resolve(self, url, public_id, context):  # type: ignore[no-untyped-def]
        if url == XLINK_URL:
            return self.resolve_filename(str(SCHEMAS / "xlink.xsd"), context)
        if "://" in url:
            raise LookupError(f"schema import {url!r} is not vendored in {SCHEMAS}")
        return None  # a local file: lxml reads it


@cache
def alto_schema() -> etree.XMLSchema:
    """ALTO 4.4: validates any ALTO 4.x document (namespace ns-v4)."""
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_LocalSchemas())
    return etree.XMLSchema(etree.parse(str(ALTO_XSD), parser))
