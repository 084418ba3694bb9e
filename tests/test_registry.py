"""The registries: names, specs, errors."""

import pytest

from acga_lightning.registry import ATTENTION, REGISTRIES, Registry, parse_spec


def test_every_kind_is_populated_with_the_required_names():
    required = {
        "video_encoder": {"i3d", "i3d_r50", "precomputed"},
        "text_encoder": {"word_cnn"},
        "attention": {"acga", "vgla", "lgva", "none"},
        "decoder": {"multires", "single", "dynamic_filter"},
        "loss": {"wbce", "bce"},
    }
    for kind, names in required.items():
        assert names <= set(REGISTRIES[kind].names()), kind


def test_unknown_name_lists_known_names():
    with pytest.raises(KeyError, match="known attentions: acga, lgva, none, vgla"):
        ATTENTION.build("acgaa")


def test_spec_forms_and_injection():
    module = ATTENTION.build(
        {"name": "acga", "visual_channels": 8}, visual_channels=16, text_channels=4
    )
    assert module.lgva.visual_channels == 8  # the spec wins over injected values
    assert module.vgla.text_channels == 4  # injected where the spec is silent
    with pytest.raises(TypeError, match="unknown argument"):
        ATTENTION.build({"name": "acga", "channelz": 3})
    with pytest.raises(ValueError, match="'name'"):
        parse_spec({"visual_channels": 3})


def test_user_plugin_registration_and_duplicates():
    registry = Registry("widget")

    @registry.register("mine")
    class Mine:
        def __init__(self, size: int = 3) -> None:
            self.size = size

    assert registry.build({"name": "mine", "size": 5}).size == 5
    assert registry.signature("mine") == {"size": 3}
    with pytest.raises(ValueError, match="already registered"):
        registry.register("mine")(type("Other", (), {}))
