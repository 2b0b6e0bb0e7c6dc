"""The step-strategy chain, the built-in strategies, and the one registry builder (with plugins)."""
from navigation.steps.builtin import BUILTIN_STRATEGIES, default_registry
from navigation.steps.plugins import LEGACY_GROUP, STEPS_GROUP, activate, active_plugins, build_registry
from navigation.steps.registry import CustomHandler, StepContext, StepOutcome, StepStrategy, StrategyRegistry

__all__ = ["BUILTIN_STRATEGIES", "default_registry", "build_registry", "activate", "active_plugins",
           "STEPS_GROUP", "LEGACY_GROUP", "CustomHandler", "StepContext", "StepOutcome", "StepStrategy",
           "StrategyRegistry"]
