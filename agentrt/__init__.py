"""agentrt: run agent workflows under end-to-end deadlines."""
