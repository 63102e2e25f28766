"""Researcher tools: load any checkpoint, read and write images, tiled inference, denoise your own
images, evaluate any checkpoint and write benchmark submissions."""
