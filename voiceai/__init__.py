"""The `voiceai` command: the composition root that starts the transports and runs admin tasks."""
