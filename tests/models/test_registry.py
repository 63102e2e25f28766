from __future__ import annotations

import pytest

from models import registry


def test_register_create_list_and_duplicates() -> None:
    @registry.register_model("_test_double")
    def double(*, x: int = 1) -> int:
        return 2 * x

    try:
        assert registry.create_model("_test_double", x=4) == 8
        assert "_test_double" in registry.list_models("_test_*")
        assert registry.is_model("_test_double")
        with pytest.raises(ValueError, match="already registered"):
            registry.register_model("_test_double")(lambda: 0)
    finally:
        registry.unregister_model("_test_double")
    with pytest.raises(KeyError, match="unknown model '_test_double'"):
        registry.create_model("_test_double")
