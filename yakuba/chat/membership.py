"""Members of 所属 channels follow the directory (owned by helper H1)."""
