"""The domain's vocabulary, defined once: what a prospect's data may hold.

The keys are the domain's own Spanish names, used unchanged in every layer (models, JSON, the
extraction schema, the admin): an earlier attempt lost all its data to a Spanish/English key
mismatch between layers. The value lists below are what the extraction schema, the guard, the
models' choices and the admin's labels all derive from.
"""

from __future__ import annotations

import math
from typing import Any

from django.db import models


# Who the visitor is, as the sales team sorts people (SPEC §5 gives each one's cues).
class Arquetipo(models.TextChoices):
    PROFESIONAL_VISION = "profesional_vision", "Profesional con visión"  # employed, wants more
    EMPRENDEDOR_DUENO_NEGOCIO = "emprendedor_dueno_negocio", "Emprendedor / dueño de negocio"
    INDEPENDIENTE_FREELANCER = "independiente_freelancer", "Independiente / freelancer"
    LIDER_HOGAR = "lider_hogar", "Líder del hogar"  # runs the home
    LIDER_COMUNIDAD = "lider_comunidad", "Líder de comunidad"  # leads a group, a church, a team
    JOVEN_AMBICION = "joven_ambicion", "Joven con ambición"  # young, studying


# What holds the visitor back.
class Objecion(models.TextChoices):
    PRECIO = "precio", "Precio"
    TIEMPO = "tiempo", "Tiempo"
    CONFIANZA = "confianza", "Confianza"
    MLM = "mlm", "Multinivel (MLM)"


class Momento(models.TextChoices):
    """How ready the visitor is to be contacted, derived in code from ``nivel_interes``."""

    CALIENTE = "caliente", "Caliente"
    TIBIO = "tibio", "Tibio"
    FRIO = "frio", "Frío"

    @classmethod
    def for_nivel(cls, nivel_interes: int | None) -> str | None:
        """Never asked of the model: >= 7 caliente, >= 4 tibio, else frio (None when unrated)."""
        if nivel_interes is None:
            return None
        if nivel_interes >= 7:
            return cls.CALIENTE.value
        return cls.TIBIO.value if nivel_interes >= 4 else cls.FRIO.value


class Stage(models.TextChoices):
    """Where the sales conversation stands, in order: iniciar -> acoger -> activar."""

    INICIAR = "iniciar", "Iniciar"
    ACOGER = "acoger", "Acoger"
    ACTIVAR = "activar", "Activar"

    @classmethod
    def furthest(cls, a: str, b: str) -> Stage:
        """The later of two stages (the members are declared in order)."""
        order = list(cls)
        return order[max(order.index(cls(a)), order.index(cls(b)))]


# The prospect's data, in the extraction's keys: scalars that a later non-null value replaces,
# then the interest level, the moment derived from it, and the objections (a union).
SCALAR_FIELDS = ("nombre", "email", "telefono", "ocupacion", "arquetipo")
FIELDS = (*SCALAR_FIELDS, "nivel_interes", "momento_optimo", "objeciones")

NIVEL_MIN, NIVEL_MAX = 0, 10


def clamp_nivel(value: float) -> int:
    """Round half up (6.5 -> 7) and clamp to 0..10."""
    return max(NIVEL_MIN, min(NIVEL_MAX, math.floor(value + 0.5)))


def empty_data() -> dict[str, Any]:
    """The data of a visitor who has said nothing yet."""
    return {**dict.fromkeys(FIELDS), "objeciones": []}
