"""The project's own small sample data (SFT samples in upstream layouts) and its tools."""
