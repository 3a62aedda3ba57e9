"""Provider credentials (API keys, webhook secrets) kept encrypted at rest in the FusionPBX database."""
