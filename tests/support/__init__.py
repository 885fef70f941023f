"""Test support that runs outside the test process (the hostile fake server)."""
