"""The package's public face: ``__all__`` is exactly what ``pytest_observastack`` exports."""

from __future__ import annotations
import __future__

import types

import pytest

import pytest_observastack
from pytest_observastack import _errors


def _public_names(module: types.ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType | __future__._Feature)
    }


def test_all_is_exactly_the_public_names() -> None:
    assert set(pytest_observastack.__all__) == _public_names(pytest_observastack)


def test_all_is_sorted_and_has_no_duplicates() -> None:
    names = pytest_observastack.__all__
    assert names == sorted(set(names), key=lambda n: (n[0].islower(), n))


@pytest.mark.parametrize("name", pytest_observastack.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(pytest_observastack, name) is not None


def test_every_error_of_the_tree_is_public() -> None:
    assert set(_errors.__all__) <= set(pytest_observastack.__all__)
    for name in _errors.__all__:
        assert issubclass(getattr(pytest_observastack, name), pytest_observastack.ObservastackError)


def test_unknown_attribute_says_so() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        _ = pytest_observastack.Nope


def test_token_factory_is_the_forge_class() -> None:
    from pytest_observastack._forge import TokenFactory

    assert pytest_observastack.TokenFactory is TokenFactory
