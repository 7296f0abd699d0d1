"""Merge and stage rules, and the fold that makes a Prospect a pure function of its sessions."""

from __future__ import annotations

import itertools

import pytest

from prospects.services import fold, merge_data, stage_for
from prospects.vocabulary import Stage, empty_data


def data(**fields):
    return {**empty_data(), **fields}


def test_null_or_empty_never_overwrites_a_value():
    old = data(nombre="Juan Pérez", email="juan@example.com", ocupacion="ingeniero")

    merged = merge_data(old, data(nombre=None, email="", ocupacion=None))

    assert merged["nombre"] == "Juan Pérez"
    assert merged["email"] == "juan@example.com"
    assert merged["ocupacion"] == "ingeniero"


def test_new_non_null_scalar_replaces_the_old():
    merged = merge_data(data(nombre="Juan", telefono="+573001112233"), data(nombre="Juan Pérez"))

    assert merged["nombre"] == "Juan Pérez"
    assert merged["telefono"] == "+573001112233"


def test_objeciones_are_a_union_in_first_seen_order():
    merged = merge_data(data(objeciones=["precio", "tiempo"]), data(objeciones=["mlm", "precio"]))

    assert merged["objeciones"] == ["precio", "tiempo", "mlm"]


def test_interest_and_momento_follow_the_latest_extraction_even_downwards():
    merged = merge_data(data(nivel_interes=8, momento_optimo="caliente"), data(nivel_interes=2))

    assert merged["nivel_interes"] == 2
    assert merged["momento_optimo"] == "frio"


def test_interest_absent_from_new_extraction_keeps_the_old():
    merged = merge_data(data(nivel_interes=6, momento_optimo="tibio"), data(nivel_interes=None))

    assert (merged["nivel_interes"], merged["momento_optimo"]) == (6, "tibio")


@pytest.mark.parametrize(
    ("fields", "stage"),
    [
        ({}, Stage.INICIAR),
        ({"nombre": "Ana", "arquetipo": "lider_hogar", "nivel_interes": 4}, Stage.ACOGER),
        ({"nombre": "Ana", "arquetipo": None, "nivel_interes": 9}, Stage.INICIAR),
        ({"nombre": "Ana", "arquetipo": "lider_hogar", "nivel_interes": 3}, Stage.INICIAR),
        ({"telefono": "+34600111222", "nivel_interes": 7}, Stage.ACTIVAR),
        ({"telefono": "+34600111222", "nivel_interes": 6}, Stage.INICIAR),
    ],
)
def test_stage_rules(fields, stage):
    assert stage_for(data(**fields)) == stage


def test_stage_is_the_furthest_reached_along_the_fold():
    sessions = [
        data(nombre="Ana", telefono="+34600111222", nivel_interes=8),  # activar here
        data(nivel_interes=2),  # later session: interest drops
    ]

    merged, stage = fold(sessions)

    assert merged["nivel_interes"] == 2
    assert stage == Stage.ACTIVAR


def test_fold_result_depends_only_on_post_order_not_on_finish_order():
    sessions = [
        data(nombre="Ana", objeciones=["precio"], nivel_interes=5),
        data(email="ana@example.com", objeciones=["tiempo"]),
        data(nombre="Ana María", nivel_interes=7),
    ]
    expected = fold(sessions)

    # Whatever order workers finish in, the fold is recomputed over sessions in POST order.
    for _finish_order in itertools.permutations(range(3)):
        assert fold(sessions) == expected
    assert expected[0]["nombre"] == "Ana María"
    assert expected[0]["objeciones"] == ["precio", "tiempo"]
