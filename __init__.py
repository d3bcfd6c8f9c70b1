"""gaptune: adapt a multimodal model to a task with no training data by tuning on what it gets wrong."""
