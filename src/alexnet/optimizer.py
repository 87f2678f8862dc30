"""The paper's update rule (Sec. 5) as a Keras optimizer, and the factory the trainer calls."""

from __future__ import annotations

import keras
from keras import ops

from alexnet.config import TrainConfig


@keras.saving.register_keras_serializable(package="alexnet")
class PaperSGD(keras.optimizers.Optimizer):
    """Sec. 5: v <- momentum * v - weight_decay * lr * w - lr * grad;  w <- w + v.

    The decay term enters the momentum together with the gradient (L2 regularization folded into the
    update), unlike Keras' decoupled `weight_decay`, which shrinks w outside the momentum. Like the paper
    ("w" is every weight) it decays every trainable variable, biases included.

    Keras' own `weight_decay` argument is not used: `weight_decay` here is the coupled paper term.
    """

    def __init__(
        self,
        learning_rate: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 0.0005,
        name: str = "paper_sgd",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"PaperSGD: momentum must be in [0, 1), got {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"PaperSGD: weight_decay must be >= 0, got {weight_decay}")
        self.momentum = float(momentum)
        self.coupled_weight_decay = float(weight_decay)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.velocities = self.add_optimizer_variables(variables, "velocity")

    def update_step(self, gradient, variable, learning_rate):
        velocity = self.velocities[self._get_variable_index(variable)]
        if keras.backend.backend() == "tensorflow":
            from alexnet import optimizer_tensorflow

            if optimizer_tensorflow.applies(variable):
                return optimizer_tensorflow.update(
                    velocity.value, variable, gradient, learning_rate, self.momentum, self.coupled_weight_decay
                )
        self.update_step_ops(gradient, variable, learning_rate, velocity)

    def update_step_ops(self, gradient, variable, learning_rate, velocity):
        """The backend-neutral form (keras.ops, one op at a time on TensorFlow)."""
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        momentum = ops.cast(self.momentum, variable.dtype)
        decay = ops.cast(self.coupled_weight_decay, variable.dtype)
        self.assign(
            velocity,
            ops.subtract(
                ops.multiply(momentum, velocity),
                ops.multiply(learning_rate, ops.add(gradient, ops.multiply(decay, variable))),
            ),
        )
        self.assign_add(variable, velocity)

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "weight_decay": self.coupled_weight_decay})
        return config


def make_optimizer(train_cfg: TrainConfig) -> keras.optimizers.Optimizer:
    """paper_sgd: the Sec. 5 rule (coupled decay); sgdw: Keras SGD with decoupled weight decay."""
    if train_cfg.optimizer == "paper_sgd":
        return PaperSGD(
            learning_rate=train_cfg.learning_rate,
            momentum=train_cfg.momentum,
            weight_decay=train_cfg.weight_decay,
        )
    if train_cfg.optimizer == "sgdw":
        return keras.optimizers.SGD(
            learning_rate=train_cfg.learning_rate,
            momentum=train_cfg.momentum,
            weight_decay=train_cfg.weight_decay or None,
        )
    raise ValueError(f"train.optimizer: unknown optimizer '{train_cfg.optimizer}'; use paper_sgd or sgdw")
