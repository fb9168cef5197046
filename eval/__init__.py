"""The SAM-NER inference pipeline and the scorer."""
