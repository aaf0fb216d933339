import pytest
import torch
from torch import nn

from edgeport.errors import ConfigError
from edgeport.sources.models import available_models, build_model, count_parameters, summary_text

SEED_SUMMARY = """\
----------------------------------------------------------------
        Layer (type)               Output Shape         Param #
================================================================
           Flatten-1                  [-1, 784]               0
            Linear-2                   [-1, 96]          75,360
              Tanh-3                   [-1, 96]               0
           Dropout-4                   [-1, 96]               0
            Linear-5                  [-1, 256]          24,832
           Sigmoid-6                  [-1, 256]               0
           Dropout-7                  [-1, 256]               0
            Linear-8                   [-1, 10]           2,570
           Softmax-9                   [-1, 10]               0
================================================================
Total params: 102,762
Trainable params: 102,762
Non-trainable params: 0
----------------------------------------------------------------
Input size (MB): 0.00
Forward/backward pass size (MB): 0.01
Params size (MB): 0.39
Estimated Total Size (MB): 0.41
----------------------------------------------------------------
"""


def test_seed_network_parameters_and_layer_order():
    model = build_model("mnist-mlp")
    assert count_parameters(model) == 102_762
    layers = [type(m) for m in model.modules() if not isinstance(m, (nn.Sequential,)) and m is not model]
    assert layers == [
        nn.Flatten,
        nn.Linear,
        nn.Tanh,
        nn.Dropout,
        nn.Linear,
        nn.Sigmoid,
        nn.Dropout,
        nn.Linear,
        nn.Softmax,
    ]
    shapes = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]
    assert shapes == [(784, 96), (96, 256), (256, 10)]
    assert all(m.p == 0.2 for m in model.modules() if isinstance(m, nn.Dropout))


def test_summary_matches_seed_table_line_for_line():
    assert summary_text(build_model("mnist-mlp")).splitlines() == SEED_SUMMARY.splitlines()


def test_summary_cli_prints_table(capsys):
    from edgeport.cli import main

    assert main(["summary"]) == 0
    assert capsys.readouterr().out.splitlines() == SEED_SUMMARY.splitlines()


def test_forward_gives_probabilities_and_logits_match():
    model = build_model("mnist-mlp").eval()
    x = torch.randn(5, 1, 28, 28)
    probs = model(x)
    assert probs.shape == (5, 10)
    torch.testing.assert_close(probs.sum(1), torch.ones(5))
    torch.testing.assert_close(torch.softmax(model.logits(x), 1), probs)


def test_registry_lists_and_rejects_unknown():
    assert "mnist-mlp" in available_models()
    with pytest.raises(ConfigError, match="unknown model"):
        build_model("nope")
    with pytest.raises(ConfigError, match="cannot import"):
        build_model("no_such_module_xyz:factory")


def test_random_init_is_the_same_on_every_run():
    from edgeport.sources.models import resolve

    torch.manual_seed(123)
    a = resolve(model_ref="mnist-cnn", random_init=True)
    b = resolve(model_ref="mnist-cnn", random_init=True)
    after = torch.rand(1)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(1))  # the caller's generator is left as it was
    for (k, va), vb in zip(a.module.state_dict().items(), b.module.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    assert "seed 0" in a.provenance["weights"]


def test_model_plugins_load_through_entry_points(monkeypatch):
    """edgeport's own models come in through the edgeport.models entry points, like a third party's;
    a broken third-party plugin is a warning, a missing edgeport one a one-line error."""
    from importlib.metadata import EntryPoint

    import edgeport.sources.models as m
    from edgeport.errors import ConfigError

    group = m.ENTRY_POINT_GROUP
    eps = [
        EntryPoint("seed", "edgeport.seed.models", group),
        EntryPoint("zoo", "edgeport.zoo", group),
        EntryPoint("broken", "no_such_package_here.models", group),
    ]
    monkeypatch.setattr(m, "_loaded_plugins", False)
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group=None: eps)
    with pytest.warns(UserWarning, match="model plugin broken"):
        m._builtins()
    assert {"mnist-mlp", "mnist-cnn", "text-tagger"} <= set(m.available_models())
    monkeypatch.setattr(m, "_loaded_plugins", False)
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group=None: [])
    with pytest.raises(ConfigError, match="reinstall edgeport"):
        m._builtins()
    monkeypatch.setattr(m, "_loaded_plugins", False)  # the next test finds the real entry points again
