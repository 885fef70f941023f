"""The core every layer builds on: one clock, absolute deadlines, one error tree,
the event loop's lag, and the settings that resolve paths."""
