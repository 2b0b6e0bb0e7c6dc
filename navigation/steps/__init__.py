"""The step-strategy chain and the built-in strategies."""
from navigation.steps.builtin import BUILTIN_STRATEGIES, default_registry
from navigation.steps.registry import StepContext, StepOutcome, StepStrategy, StrategyRegistry

__all__ = ["BUILTIN_STRATEGIES", "default_registry", "StepContext", "StepOutcome", "StepStrategy",
           "StrategyRegistry"]
