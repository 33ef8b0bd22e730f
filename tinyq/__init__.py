"""tinyq: a trained Keras model to a microcontroller, int8, with the numbers to prove it."""

__version__ = "0.1.0"
