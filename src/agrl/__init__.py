"""agrl: Adaptive Guided Reinforcement Learning for e-commerce search relevance judges."""

__version__ = "0.1.0"
