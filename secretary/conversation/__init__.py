"""The conversation: history, brains (LLM, rule-based front desk) and the actions they decide on."""
