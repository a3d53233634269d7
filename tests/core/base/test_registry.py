"""The one registry (compress_core.base.registry): an entry is one decorated class carrying its vocabulary,
a key is taken once, and the registry reads like a dict that nothing but ``register`` writes to."""

from __future__ import annotations

import pytest

from compress_core.base.registry import Registry


class Greeter:
    key = ""
    label = ""
    description = ""
    needs: str | None = None

    def greet(self) -> str:
        return f"hello from {self.key}"


def test_an_entry_is_one_decorated_class_and_its_vocabulary_is_read_from_it():
    reg: Registry[Greeter] = Registry("greeter")

    @reg.register
    class Plain(Greeter):
        key = "plain"
        label = "Plain hello"
        description = "Says hello."

    @reg.register
    class Loud(Greeter):
        key = "loud"
        label = "Loud hello"
        description = "Says hello, loudly."
        needs = "images"

    assert list(reg) == ["plain", "loud"] and len(reg) == 2  # registration order
    assert isinstance(reg["plain"], Plain) and reg["loud"].greet() == "hello from loud"
    assert "plain" in reg and "quiet" not in reg and ["plain"] not in reg  # unhashable: simply not a key
    assert reg.get("quiet") is None  # a Mapping's get, not a lookup that raises
    assert reg.labels() == {"plain": "Plain hello", "loud": "Loud hello"}
    assert reg.descriptions()["loud"] == "Says hello, loudly."
    assert [e.needs for e in reg.values()] == [None, "images"]
    reg.unregister("loud")
    assert list(reg) == ["plain"]


def test_a_class_registry_holds_the_classes_themselves():
    reg: Registry[type[Greeter]] = Registry("greeter", instances=False)

    @reg.register
    class Built(Greeter):
        key = "built"
        label = "Built later"
        description = "Takes arguments, so the caller builds it."

        def __init__(self, name: str) -> None:
            self.name = name

    assert reg["built"] is Built and reg["built"]("x").name == "x"


def test_a_taken_key_is_refused_with_the_owner_named():
    reg: Registry[Greeter] = Registry("greeter")

    @reg.register
    class First(Greeter):
        key = "same"
        label = "First"
        description = "The first."

    class Second(Greeter):
        key = "same"
        label = "Second"
        description = "The second."

    with pytest.raises(ValueError, match=r"greeter key 'same' is already registered \(by .*First\); .*Second"):
        reg.register(Second)
    assert isinstance(reg["same"], First) and len(reg) == 1


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"key": "", "label": "L", "description": "D"}, "has no key"),
        ({"key": "k", "label": " ", "description": "D"}, "non-empty label"),
        ({"key": "k", "label": "L", "description": ""}, "non-empty description"),
        ({"key": "k", "label": "L", "description": "D", "needs": ""}, "needs is None or a non-empty string"),
    ],
)
def test_an_entry_without_its_vocabulary_is_refused(attrs, message):
    reg: Registry[Greeter] = Registry("greeter")
    with pytest.raises(ValueError, match=message):
        reg.register(type("Bad", (Greeter,), attrs))
    assert len(reg) == 0


def test_the_registry_is_read_only():
    reg: Registry[Greeter] = Registry("greeter")
    with pytest.raises(TypeError):
        reg["x"] = Greeter()  # type: ignore[index]
    with pytest.raises(KeyError):
        reg.unregister("x")
