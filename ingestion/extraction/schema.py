"""The extraction schema: the domain's Spanish keys, used unchanged in every layer.

An earlier attempt lost all its data to a Spanish/English key mismatch between layers, so no
layer here maps names: models, JSON, admin and prompt all use these keys.
"""

from __future__ import annotations

import math
from typing import Any

SCALAR_FIELDS = ("nombre", "email", "telefono", "ocupacion", "arquetipo")
FIELDS = (*SCALAR_FIELDS, "nivel_interes", "momento_optimo", "objeciones")

ARQUETIPOS = (
    "profesional_vision",
    "emprendedor_dueno_negocio",
    "independiente_freelancer",
    "lider_hogar",
    "lider_comunidad",
    "joven_ambicion",
)
OBJECIONES = ("precio", "tiempo", "confianza", "mlm")
MOMENTOS = ("caliente", "tibio", "frio")

NIVEL_MIN, NIVEL_MAX = 0, 10


def clamp_nivel(value: float) -> int:
    """Round half up (6.5 -> 7) and clamp to 0..10."""
    return max(NIVEL_MIN, min(NIVEL_MAX, math.floor(value + 0.5)))


def momento_for(nivel_interes: int | None) -> str | None:
    """Derived in code, never asked of the model: >= 7 caliente, >= 4 tibio, else frio."""
    if nivel_interes is None:
        return None
    if nivel_interes >= 7:
        return "caliente"
    if nivel_interes >= 4:
        return "tibio"
    return "frio"


def empty_data() -> dict[str, Any]:
    return {
        "nombre": None,
        "email": None,
        "telefono": None,
        "ocupacion": None,
        "arquetipo": None,
        "nivel_interes": None,
        "momento_optimo": None,
        "objeciones": [],
    }


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
