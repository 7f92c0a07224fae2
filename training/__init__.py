"""framepilot's training side: the episode corpus (``training.corpus``) and the world-model trainer."""
