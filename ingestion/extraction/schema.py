"""The extraction schema: what the model is asked for, in the domain's Spanish keys.

The keys and value lists come from ``prospects.vocabulary`` (defined once, used unchanged in
every layer: models, JSON, admin and prompt), so no layer maps names.
"""

from __future__ import annotations

from typing import Any

from prospects.vocabulary import Arquetipo, Momento, Objecion

# The value lists of prospects.vocabulary, as the schema and the guard use them.
ARQUETIPOS = tuple(Arquetipo.values)
OBJECIONES = tuple(Objecion.values)
MOMENTOS = tuple(Momento.values)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


# What the model is asked for. Only keywords structured outputs accepts (type, properties,
# required, additionalProperties: false, enum, anyOf, items); ranges and formats are enforced
# by guard.py. momento_optimo is absent on purpose: it is derived from nivel_interes in code.
MODEL_FIELDS = ("nombre", "email", "telefono", "ocupacion", "arquetipo", "nivel_interes", "objeciones")
OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "nombre": _nullable({"type": "string"}),
        "email": _nullable({"type": "string"}),
        "telefono": _nullable({"type": "string"}),
        "ocupacion": _nullable({"type": "string"}),
        "arquetipo": _nullable({"type": "string", "enum": list(ARQUETIPOS)}),
        "nivel_interes": {"type": "integer"},
        "objeciones": {"type": "array", "items": {"type": "string", "enum": list(OBJECIONES)}},
    },
    "required": list(MODEL_FIELDS),
    "additionalProperties": False,
}
