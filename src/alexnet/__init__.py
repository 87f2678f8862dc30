"""Reproduce AlexNet (Krizhevsky, Sutskever, Hinton, 2012) and its ablations."""

__version__ = "0.1.0"
