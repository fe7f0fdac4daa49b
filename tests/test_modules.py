"""The torch modules: name tables, layer names and the L2 parameter group."""

import torch

from sknn import _options
from sknn._modules import ACTIVATIONS, WEIGHT_INITS, ConvModule, MLPModule, l2_weights


def test_name_tables_match_the_parameter_options():
    assert set(ACTIVATIONS) == set(_options.ACTIVATIONS)
    assert set(WEIGHT_INITS) == set(_options.WEIGHT_INITS)


def test_l2_applies_to_dense_and_conv_weights_only():
    mlp = MLPModule(10, (8, 6), 3, batch_norm=True)
    assert [n for n, _ in mlp.named_parameters() if n.endswith("weight")] == [
        "dense0.weight", "batchnorm0.weight", "dense1.weight",
        "batchnorm1.weight", "dense_out.weight"]
    assert [p.shape for p in l2_weights(mlp)] == [
        torch.Size([8, 10]), torch.Size([6, 8]), torch.Size([3, 6])]
    cnn = ConvModule((8, 8, 1), ((4,), (6,)), (5,), 2, batch_norm=True)
    shapes = [tuple(p.shape) for p in l2_weights(cnn)]
    assert shapes == [(4, 1, 3, 3), (6, 4, 3, 3), (5, 6 * 4 * 4), (2, 5)]
