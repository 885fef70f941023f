"""Settings for the whole suite.

Hypothesis's per-example deadline (200 ms by default) is a timed assertion, and
these machines are shared and of unknown speed: the suite turns it off and
keeps every property test's example count bounded instead.
"""

from hypothesis import settings

settings.register_profile("agentrt", deadline=None)
settings.load_profile("agentrt")
