"""The events function: reads the stage's events queue (`shared.events`) and hands every event to its consumers."""
