"""The test tables follow the registry: a new activation or parameter cannot
slip past the elementwise, special-value, error and simulator tests."""

import reference as ref
from helpers import OP_DEFAULTS, OP_PARAMS

from gpu_act.registry import ACTIVATIONS, PLAIN


def test_every_plain_activation_has_an_independent_reference():
    assert set(ref.ELEMENTWISE) == set(PLAIN), "write the NumPy reference of a new activation in tests/reference.py"


def test_op_defaults_hold_every_activation_and_choice():
    assert {n for n, _ in OP_DEFAULTS} == set(PLAIN)
    for name in PLAIN:
        for p in ACTIVATIONS[name].params:
            for c in p.choices:
                assert (name, {} if c == p.default else {p.name: c}) in OP_DEFAULTS


def test_every_numeric_parameter_is_exercised_away_from_its_default():
    varied = {(n, k) for n, params in OP_PARAMS for k, v in params.items()}
    for name in PLAIN:
        for p in ACTIVATIONS[name].params:
            if not p.choices:
                assert (name, p.name) in varied, f"add a case for {name}({p.name}=...) to tests/helpers.py OP_PARAMS"
