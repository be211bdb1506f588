"""Agents: a model with tools (Python functions), looping call → execute → observe until it answers.
See docs/tools.md."""

from genloom.agents.agent import Agent, AgentConfig, AgentResult, TraceStep
from genloom.agents.builtin import BUILTIN, builtin_tools, calculator, current_datetime, file_reader
from genloom.agents.schema import FunctionTool, function_tool

__all__ = [
    "BUILTIN",
    "Agent",
    "AgentConfig",
    "AgentResult",
    "FunctionTool",
    "TraceStep",
    "builtin_tools",
    "calculator",
    "current_datetime",
    "file_reader",
    "function_tool",
]
