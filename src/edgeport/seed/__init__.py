"""The seed: the reference MNIST workload, apart from the generic toolkit.

- :mod:`.models`: the learning path's MLP (``mnist-mlp``) and a LeNet-style CNN (``mnist-cnn``);
- :mod:`.train`: their fast MNIST trainer;
- :mod:`.grid`: the tutorial's 4x4 prediction grid.
"""
