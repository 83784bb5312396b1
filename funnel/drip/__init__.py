"""The drip sequence engine: a pure planner, the store of its statements, and the worker loop."""
