"""The input side of a run: finding files, reading and decoding them ahead of the model, preparing
model inputs, the model behind its encoder, the embedding cache, and scoring in batches."""
